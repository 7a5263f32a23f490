"""XOR with a sigmoid output: the blog post's first network, with the sample [1, 0] it forgot.

    python examples/xor.py [SEED]
"""
import sys

import numpy as np

import lamina
from lamina.plugins import MSE, SGD, Linear, Relu, Sigmoid

lamina.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)

x = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
y = np.array([[1], [0], [0], [1]])

net = lamina.Model([
    Linear(8),
    Relu(),
    Linear(4),
    Sigmoid(),
    Linear(1),
    Sigmoid(),
])

history = net.train(x, y, optim=SGD(lr=0.6), loss=MSE(), epochs=400)

print(f"final MSE: {history[-1]:.6f}")
print(net(x))
