"""Pausing Python's cyclic garbage collector while a large gateway is parsed and compiled.

Parsing, validating and compiling a gateway at Azure's limits makes about a million small
objects; each full collection this triggers walks every object of the process, which doubled
the time of such a PUT (1.8 s -> 0.9 s measured). The objects are trees that reference counting
frees, so nothing waits for the collector meanwhile; it runs again when the last pause ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
