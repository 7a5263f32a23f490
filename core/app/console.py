"""`lamina.echo`: printing from plugins during training, without breaking the progress bar."""
from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator

from tqdm.auto import tqdm

_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("lamina_quiet", default=False)


def echo(*values: object, sep: str = " ") -> None:
    """Print one line to stdout above any progress bar (through tqdm.write), or nothing while
    output is silenced: inside `train(..., verbose=False)` and under `lamina ... --quiet`.

    >>> lamina.echo("epoch", 3, "done")   # in a callback's on_epoch_end
    """
    if not _quiet.get():
        tqdm.write(sep.join(str(value) for value in values), file=sys.stdout)


def is_quiet() -> bool:
    """True while `echo` prints nothing."""
    return _quiet.get()


@contextlib.contextmanager
def silenced(quiet: bool = True) -> Iterator[None]:
    """Silence `echo` inside the block when `quiet`; an outer silence always holds."""
    token = _quiet.set(_quiet.get() or quiet)
    try:
        yield
    finally:
        _quiet.reset(token)
