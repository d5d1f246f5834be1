"""Carrying a stream of engine output across threads and event loops.

An engine's stream is produced in one place (a blocking step loop, a private event loop) and
consumed in another (a sync generator, an async generator on the caller's loop). Both bridges
hand items over through a queue and re-raise the producer's exception in the consumer, so an
engine error mid-stream reaches the caller as it would from ``generate``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["async_from_thread", "async_from_thread_loop", "sync_from_thread_loop"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None


Producer = Callable[[Callable[[T], None]], Coroutine[Any, Any, None]]


def sync_from_thread_loop(
    produce: Producer[T], submit: Callable[[Coroutine[Any, Any, None]], Any]
) -> Iterator[T]:
    """Iterate, blocking, over what ``produce(put)`` puts while it runs on another loop."""
    items: queue.Queue[T | _End] = queue.Queue()
    submit(_guarded(produce, items.put))
    while True:
        item = items.get()
        if isinstance(item, _End):
            if item.error is not None:
                raise item.error
            return
        yield item


async def async_from_thread_loop(
    produce: Producer[T], submit: Callable[[Coroutine[Any, Any, None]], Any]
) -> AsyncIterator[T]:
    """Iterate, on the caller's loop, over what ``produce(put)`` puts on another loop."""
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[T | _End] = asyncio.Queue()

    def put(item: T | _End) -> None:
        loop.call_soon_threadsafe(items.put_nowait, item)

    submit(_guarded(produce, put))
    async for item in _drained(items):
        yield item


async def async_from_thread(iterate: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Iterate, on the caller's loop, over a blocking iterator run in a worker thread."""
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[T | _End] = asyncio.Queue()

    def run() -> None:
        error: BaseException | None = None
        try:
            for item in iterate():
                loop.call_soon_threadsafe(items.put_nowait, item)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            error = exc
        loop.call_soon_threadsafe(items.put_nowait, _End(error))

    threading.Thread(target=run, name="promptkit-stream", daemon=True).start()
    async for item in _drained(items):
        yield item


async def _drained(items: asyncio.Queue[T | _End]) -> AsyncIterator[T]:
    """The items up to the producer's end marker; its error, if any, raised here."""
    while True:
        item = await items.get()
        if isinstance(item, _End):
            if item.error is not None:
                raise item.error
            return
        yield item


async def _guarded(produce: Producer[T], put: Callable[[Any], None]) -> None:
    error: BaseException | None = None
    try:
        await produce(put)
    except BaseException as exc:
        error = exc
    put(_End(error))
