"""Built-in plugins of training: losses, optimizers, metrics, callbacks, initializers, schedules and
strategies."""
