"""`lamina.echo`: printing from plugins during training, without breaking the progress bar; and
`escape`: text from a file made safe to show on a terminal."""
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


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str, lines: bool = False) -> str:
    r"""`text` (a class name, a file name, a vocabulary, generated text: anything a file holds)
    as it may reach a terminal: every character that is not printable is shown as its Python
    escape, so that it can neither drive the terminal (ESC, BEL, other C0/C1 controls, bidi
    overrides) nor fail to encode (a lone surrogate).

    A byte that was not UTF-8 (os.fsdecode's surrogateescape, U+DC80-U+DCFF) shows as `\xff`,
    other lone surrogates as `\udXXX`, controls as `\x1b`, `\n`, `\t`, and a backslash as `\\`,
    so that a name's escape reads back unambiguously. With `lines=True`, for text meant to be
    read (generated text, messages), newlines and tabs are kept and a backslash is left as it
    is; ESC, BEL and the rest are still shown escaped.

    >>> print(escape("cat\x1b[2J\tdog"))
    cat\x1b[2J\tdog
    """
    if text.isprintable() and "\\" not in text:
        return text
    shown = []
    for char in text:
        code = ord(char)
        if lines and char in "\n\t":
            shown.append(char)
        elif char == "\\":
            shown.append(char if lines else "\\\\")
        elif char in _NAMED:
            shown.append(_NAMED[char])
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
            shown.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():
            shown.append(char)
        elif code <= 0xFF:
            shown.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            shown.append(f"\\u{code:04x}")
        else:
            shown.append(f"\\U{code:08x}")
    return "".join(shown)
