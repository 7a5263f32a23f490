"""What a plugin implements: the base class of each kind (Layer, Loss, Optimizer, Metric,
Callback, Initializer, Schedule, Dataset, Strategy) and how each describes its constructor
arguments (configurable)."""
