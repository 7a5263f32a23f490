"""The training loop and what it reads and writes while it runs: the loop (fit, evaluate,
predict), one step, batches, data sources read a batch at a time, the options of
`Model.train`, progress bars, the History and checkpoints."""
