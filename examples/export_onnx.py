"""Train the digits CNN, export it as ONNX, and run the file in onnxruntime without lamina.

    pip install onnx onnxruntime     (or, in a clone of lamina: pip install ".[onnx]" onnxruntime)
    python examples/export_onnx.py [OUT.onnx]

The exported file computes what model.predict does; this script checks that on the test split.
"""
import sys
from pathlib import Path

import numpy as np

import lamina

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("digits_cnn.onnx")
lamina.seed(0)
x_train, y_train, x_test, y_test = lamina.dataset("digits", flatten=False, seed=0)  # (n, 1, 8, 8) images
model = lamina.Model([
    {"type": "Conv2D", "filters": 16, "kernel_size": 3, "padding": "same"}, "Relu",
    {"type": "MaxPool2D", "pool_size": 2}, "Flatten", {"type": "Dropout", "rate": 0.2},
    {"type": "Linear", "units": 10},
])
model.train(x_train, y_train, optim=lamina.optimizer("Adam", lr=0.003),
            loss=lamina.loss("CrossEntropy", from_logits=True), epochs=15, batch_size=32, verbose=False)

path = model.export_onnx(out)  # input "input" (batch, 1, 8, 8), output "output" (batch, 10) logits
print(f"wrote {path} ({path.stat().st_size:,} bytes)")

try:
    import onnxruntime
except ImportError:
    sys.exit("onnxruntime is not installed (pip install onnxruntime): the file is written, not run")
session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
logits = session.run(None, {"input": x_test.astype(np.float32)})[0]
expected = model.predict(x_test)
print(f"onnxruntime test accuracy: {np.mean(logits.argmax(axis=1) == y_test):.3f}")
print(f"largest difference from model.predict: {np.abs(logits - expected).max() / np.abs(expected).max():.1e} (relative)")
