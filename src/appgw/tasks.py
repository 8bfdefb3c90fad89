"""The one place that starts background tasks, and keeps them referenced while they run.

asyncio keeps only weak references to running tasks: a task nobody holds may be collected
mid-flight. Every task of appgw is started here (a test bans `create_task` elsewhere), held
until it ends, and its failure is logged instead of vanishing with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("appgw.tasks")

T = TypeVar("T")

_running: set[asyncio.Task[Any]] = set()


def spawn(coroutine: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """Run `coroutine` as a task of the running loop, referenced until it ends."""
    task = asyncio.get_running_loop().create_task(coroutine, name=name)
    _running.add(task)
    task.add_done_callback(_ended)
    return task


def _ended(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())


def running() -> int:
    """How many spawned tasks have not ended (tests, and shutdown's wait)."""
    return len(_running)
