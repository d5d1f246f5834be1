"""The stream bridges: items cross threads and loops in order, and the producer's error reaches
the consumer (engine-free)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from engine_adapter._streaming import (
    async_from_thread,
    async_from_thread_loop,
    sync_from_thread_loop,
)


class LoopThread:
    """A private event loop on a thread, as AsyncVLLMEngine runs AsyncLLM."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, None]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def producer(fail: bool) -> Callable[[Callable[[int], None]], Coroutine[Any, Any, None]]:
    async def produce(put: Callable[[int], None]) -> None:
        for i in range(3):
            await asyncio.sleep(0)
            put(i)
        if fail:
            raise RuntimeError("engine died mid-stream")

    return produce


def counting(fail: bool) -> Iterator[int]:
    yield from range(3)
    if fail:
        raise RuntimeError("engine died mid-stream")


def test_sync_consumer_of_a_private_loop_gets_items_then_the_error() -> None:
    loop = LoopThread()
    try:
        assert list(sync_from_thread_loop(producer(False), loop.submit)) == [0, 1, 2]
        seen: list[int] = []
        with pytest.raises(RuntimeError, match="mid-stream"):
            seen.extend(sync_from_thread_loop(producer(True), loop.submit))
        assert seen == [0, 1, 2]
    finally:
        loop.close()


def test_async_consumers_get_items_in_order_then_the_error() -> None:
    loop = LoopThread()

    async def consume(fail: bool, *, threaded: bool) -> list[int]:
        items = []
        source = (
            async_from_thread(lambda: counting(fail))
            if threaded
            else async_from_thread_loop(producer(fail), loop.submit)
        )
        async for item in source:
            items.append(item)
        return items

    try:
        for threaded in (False, True):
            assert asyncio.run(consume(False, threaded=threaded)) == [0, 1, 2]
            with pytest.raises(RuntimeError, match="mid-stream"):
                asyncio.run(consume(True, threaded=threaded))
    finally:
        loop.close()
