"""lamina's built-in plugins. They reach the registry through the `lamina` entry-point group,
exactly as a third-party package's plugins do; importing them here is only for users who
prefer classes to names (`from lamina.plugins import Linear`)."""
from lamina import Checkpoint  # core's class, registered by the callbacks plugin
from lamina.plugins.datasets.memory import Csv, Digits, MobyDick, Npz, Spirals, Text, Xor
from lamina.plugins.layers.activations import (
    Elu,
    Gelu,
    LeakyRelu,
    LogSoftmax,
    Relu,
    Sigmoid,
    Silu,
    Softmax,
    Softplus,
    Tanh,
)
from lamina.plugins.layers.attention import (
    MultiHeadAttention,
    PositionalEmbedding,
    SinusoidalPositions,
    TransformerBlock,
)
from lamina.plugins.layers.augment import GaussianNoise, RandomCrop, RandomErasing, RandomFlip, RandomTranslation
from lamina.plugins.layers.composite import Parallel, Residual, Sequential
from lamina.plugins.layers.conv1d import AvgPool1D, Conv1D, GlobalAvgPool1D, GlobalMaxPool1D, MaxPool1D
from lamina.plugins.layers.conv2d import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D
from lamina.plugins.layers.dropout import Dropout
from lamina.plugins.layers.embedding import Embedding
from lamina.plugins.layers.linear import Linear
from lamina.plugins.layers.normalization import BatchNorm, LayerNorm, Normalization
from lamina.plugins.layers.recurrent import GRU, LSTM, RNN
from lamina.plugins.layers.reshaping import Flatten, Reshape
from lamina.plugins.training.callbacks import CSVLogger, EarlyStopping, LearningRateLogger
from lamina.plugins.training.initializers import (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    LecunNormal,
    Normal,
    Ones,
    Zeros,
)
from lamina.plugins.training.losses import L1, MSE, BinaryCrossEntropy, CrossEntropy, Huber
from lamina.plugins.training.metrics import Accuracy, BinaryAccuracy, MeanAbsoluteError, MeanSquaredError
from lamina.plugins.training.optimizers import SGD, Adagrad, Adam, AdamW, RMSProp
from lamina.plugins.training.schedules import Constant, CosineDecay, ExponentialDecay, StepDecay

__all__ = [
    "L1", "MSE", "SGD", "Accuracy", "Adagrad", "Adam", "AdamW", "BinaryAccuracy",
    "BinaryCrossEntropy", "CSVLogger", "Constant", "CosineDecay", "CrossEntropy",
    "EarlyStopping", "ExponentialDecay", "GlorotNormal", "GlorotUniform", "HeNormal",
    "HeUniform", "Huber", "LearningRateLogger", "LecunNormal", "Linear", "MeanAbsoluteError",
    "MeanSquaredError", "Normal", "Ones", "RMSProp", "Relu", "Sigmoid", "Softmax", "StepDecay",
    "Tanh", "Zeros", "Csv", "Digits", "Npz", "Spirals", "Xor", "Elu", "Gelu", "LeakyRelu",
    "LogSoftmax", "Silu", "Softplus", "Conv2D", "Dropout", "Embedding", "BatchNorm", "LayerNorm", "Normalization",
    "AvgPool2D", "GlobalAvgPool2D", "MaxPool2D", "Flatten", "Reshape", "Checkpoint",
    "Parallel", "Residual", "Sequential", "MultiHeadAttention", "PositionalEmbedding", "SinusoidalPositions",
    "TransformerBlock", "AvgPool1D", "Conv1D", "GlobalAvgPool1D", "GlobalMaxPool1D", "MaxPool1D", "GRU", "LSTM", "RNN",
    "MobyDick", "Text", "GaussianNoise", "RandomCrop", "RandomErasing", "RandomFlip", "RandomTranslation",
]
