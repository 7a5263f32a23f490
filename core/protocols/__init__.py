"""What a plugin implements: the base class of each kind (Layer, Loss, Optimizer, Metric,
Callback, Initializer, Schedule, Dataset, Strategy) and how each describes its constructor
arguments (configurable); and what the core's own pieces share: Chain (layers applied in
order, for Model and the layers made of layers) and Trainable (what training, model files and
export use of a model)."""
