"""held(): Ctrl-C and SIGTERM wait until a block ends, then arrive as usual."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def held() -> Iterator[None]:
    """SIGINT and SIGTERM are held back inside the block (in the main thread, where Python runs
    signal handlers): for steps an interrupt must not cut in half, such as creating a temporary
    file and removing it again, or building a progress bar."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
