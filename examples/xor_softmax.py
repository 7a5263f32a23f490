"""XOR as two classes with a softmax output, as in the blog post, by registered names this time.

    python examples/xor_softmax.py [SEED]
"""
import sys

import numpy as np

import lamina

lamina.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)

x = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
y = np.array([[0, 1], [1, 0], [1, 0], [0, 1]])

net = lamina.Model([
    {"type": "Linear", "units": 8},
    "Relu",
    {"type": "Linear", "units": 4},
    "Sigmoid",
    {"type": "Linear", "units": 2},
    "Softmax",
])

history = net.train(x, y, optim=lamina.optimizer("SGD", lr=0.6), loss="MSE", epochs=400)

print(f"final MSE: {history[-1]:.6f}")
print(net(x))
