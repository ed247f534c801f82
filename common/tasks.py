"""Background asyncio tasks whose failures are never dropped.

A task nobody awaits keeps its exception to itself: asyncio only mentions it
when the task is garbage-collected, if ever. The live ends run several such
tasks (a model transfer, FEC repeats, a session's control, display, stats
and timer loops); one that failed used to stall its session silently until
a timeout said something unrelated. `background` logs every exception such
a task raises and hands it to the owner, which ends its session with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("vsa.tasks")


def background(coro: Coroutine[Any, Any, Any], name: str, keep: set[asyncio.Task] | None = None,
               on_error: Callable[[str, BaseException], None] | None = None) -> asyncio.Task:
    """Run ``coro`` as a task named ``name``; held in ``keep`` (if given) until it ends.

    If it raises (anything but cancellation) the exception is logged with its
    traceback and ``on_error(name, exc)`` is called, on the event loop.
    """
    task = asyncio.ensure_future(coro)
    task.set_name(name)
    if keep is not None:
        keep.add(task)

    def done(t: asyncio.Task) -> None:
        if keep is not None:
            keep.discard(t)
        if t.cancelled():
            return
        exc = t.exception()
        if exc is None:
            return
        log.error("%s failed: %s", name, exc, exc_info=exc)
        if on_error is not None:
            on_error(name, exc)

    task.add_done_callback(done)
    return task
