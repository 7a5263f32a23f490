"""lamina's built-in plugins. They reach the registry through the `lamina` entry-point group,
exactly as a third-party package's plugins do; importing them here is only for users who
prefer classes to names (`from lamina.plugins import Linear`)."""
from lamina.plugins.activations import Relu, Sigmoid, Softmax, Tanh
from lamina.plugins.linear import Linear
from lamina.plugins.losses import MSE
from lamina.plugins.optimizers import SGD

__all__ = ["MSE", "SGD", "Linear", "Relu", "Sigmoid", "Softmax", "Tanh"]
