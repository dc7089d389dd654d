"""Tasks whose first step runs at once, inside the step of the task that starts them.

``asyncio.create_task`` runs a new task's first step a turn of the loop later, behind
every callback already queued and every socket event of the next poll: under load,
other streams' tokens. A suggestion stream's producer begins by writing the model
request, and every moment that request waits is added to the agent's wait for the
first words. Started here, the request is written within the stream's own step, right
after its ``suggestion`` event (docs/performance-history.md, "The model request,
written at once").

Python 3.12 has this built in (eager tasks). On 3.11 it is done here as 3.12 does it:
the task is made, made the current task, and its coroutine stepped once in the task's
own context, so that what the step calls (``current_task()``, a timeout, a cancel
scope) belongs to the new task, not to the one that started it. The step the loop
then runs hands the task whatever that first step ended with.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start_task(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task for ``coro`` whose first step (up to its first real wait) has run
    before this returns; the rest runs as any task's."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.eager_task_factory(loop, coro)
    first = _FirstStep(coro)
    context = contextvars.copy_context()
    task = loop.create_task(first, context=context)
    outer = asyncio.current_task(loop)
    if outer is not None:
        asyncio.tasks._leave_task(loop, outer)
    asyncio.tasks._enter_task(loop, task)
    try:
        context.run(first.run)
    finally:
        asyncio.tasks._leave_task(loop, task)
        if outer is not None:
            asyncio.tasks._enter_task(loop, outer)
    return task


class _FirstStep(Coroutine[Any, Any, T]):
    """``coro``, its first step taken early (``run``); the task's own first step then
    gets what that one ended with, and every later one goes straight to ``coro``."""

    __slots__ = ("_coro", "_handed", "_outcome", "_raised")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._handed = False
        self._outcome: Any = None  # what the first step yielded (a future, or None)
        self._raised: BaseException | None = None  # or how it ended (StopIteration too)

    def run(self) -> None:
        try:
            self._outcome = self._coro.send(None)
        except BaseException as exc:  # handed to the task at its step, which decides
            self._raised = exc

    def send(self, value: Any) -> Any:
        if self._handed:
            return self._coro.send(value)
        self._handed = True
        if self._raised is not None:
            self._reraise()
        outcome, self._outcome = self._outcome, None
        return outcome

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        # Cancelled before the loop ran the task's step. A coroutine that ended in its
        # first step ends so (as an eager task would be done already); one that waits
        # where its first step left it takes the exception there.
        if not self._handed and self._raised is not None:
            self._handed = True
            self._reraise()
        self._handed = True
        self._outcome = None
        try:
            if val is None:
                return self._coro.throw(typ)
            return self._coro.throw(typ, val, tb)  # pragma: no cover - asyncio throws one
        finally:
            # The exception comes back out through this frame, and would otherwise hold
            # it (its traceback holds the frame, the frame ``typ``) until a full collection.
            del typ, val, tb

    def _reraise(self) -> None:
        raised, self._raised = self._raised, None
        try:
            raise raised  # type: ignore[misc]
        finally:
            # Its traceback holds this frame: without this, frame and exception would
            # hold each other (and the stream's objects) until a full collection.
            del raised

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        raise TypeError("a task's first step, for its task alone: await the task")
