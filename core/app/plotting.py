"""Learning curves as a PNG, when matplotlib (the optional extra `plot`) is installed."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

from lamina.files.atomic import atomic_write
from lamina.training.history import History

INSTALL_HINT = "pip install matplotlib (lamina's plot extra)"


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_curves(history: History, path: str | os.PathLike[str]) -> Path:
    """One panel per quantity (loss, then each metric), train and validation per epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = list(history.keys())
    # a val_ key without its training key (a callback's) gets a panel of its own
    names = [key for key in keys if not key.startswith("val_") or key[4:] not in keys]
    columns = min(len(names), 3)
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(4.5 * columns, 3.4 * rows), dpi=100)
    FigureCanvasAgg(figure)  # an off-screen canvas: no display, no global pyplot state
    epochs = [e + 1 for e in history.epoch]
    for index, name in enumerate(names, start=1):
        axes = figure.add_subplot(rows, columns, index)
        alone = name.startswith("val_")
        _curve(axes, epochs, history[name], *(("validation", "tab:orange") if alone else ("train", "tab:blue")))
        if f"val_{name}" in history:
            _curve(axes, epochs, history[f"val_{name}"], "validation", "tab:orange")
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write(path, buffer.getvalue())


def _curve(axes: Any, epochs: list[int], values: list[float], label: str, color: str) -> None:
    """One line; NaN (an epoch the key was not logged) leaves a gap, so a series with gaps
    gets markers too: a value between two gaps is a point, which a line alone would not show."""
    gaps = any(math.isnan(v) for v in values)
    axes.plot(epochs, values, label=label, color=color, marker="." if gaps else None)
