"""Running a harvest from synchronous code: in a plain script, and under a running event loop.

Jupyter runs every cell inside its own event loop, where asyncio.run() refuses to start and a
coroutine cannot be waited for without handing control back to the cell. Patching the loop to
nest (nest_asyncio) would run harvester's workers and Jupyter's own handlers interleaved in one
loop that neither was written for. Instead, where a loop already runs in this thread, the
harvest gets a fresh loop in a worker thread of its own, and the caller's thread blocks until
it ends. Ctrl-C (the kernel's interrupt is a SIGINT, raised as KeyboardInterrupt in the main
thread) is passed on to the harvest as a graceful stop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Any, TypeVar

from harvester.interrupts import KEYBOARD_INTERRUPT, interruptible, request_stop
from harvester.stop import Stop

T = TypeVar("T")
_SIGNAL_CHECK = 0.25  # seconds


def loop_running() -> bool:
    """Whether an event loop runs in this thread (a notebook cell, a coroutine)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_blocking(start: Callable[[], Coroutine[Any, Any, T]], stop: Stop) -> T:
    """Run the coroutine `start()` makes to its end and return its result.

    Without a running loop, on a loop of its own in this thread (asyncio.run); where a loop
    runs, on a fresh loop in a worker thread. Each KeyboardInterrupt the waiting thread gets is
    handed to `stop` (graceful, then at once); the harvest then ends as a stopped one does.
    """
    if not loop_running():
        return asyncio.run(start())
    loop = asyncio.new_event_loop()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def work() -> None:
        try:
            with asyncio.Runner(loop_factory=lambda: loop) as runner:
                done.set_result(runner.run(start()))
        except BaseException as exc:  # handed to the waiting thread, which raises it
            done.set_exception(exc)

    thread = threading.Thread(target=work, name="harvester", daemon=True)
    thread.start()
    with interruptible():
        while not done.done():
            try:
                # In slices: a SIGINT that the kernel delivered to another thread is only
                # acted on once this thread runs Python again.
                concurrent.futures.wait([done], timeout=_SIGNAL_CHECK)
            except KeyboardInterrupt:
                with contextlib.suppress(RuntimeError):  # the loop is closed: the harvest is over
                    loop.call_soon_threadsafe(request_stop, stop, KEYBOARD_INTERRUPT)
    thread.join()
    return done.result()


_END = object()  # the producer's last item: the harvest ended (its exception, if any, follows)


def iterate_blocking(
    start: Callable[[], AsyncGenerator[T, None]], *, buffered: int
) -> Generator[T, None, None]:
    """The items of the async iterator `start()` makes, for a synchronous `for` loop.

    The async iterator runs on a loop of its own in a worker thread (in a script as under a
    running loop: one code path), at most `buffered` items ahead of the consumer: a slow
    consumer holds the producer back, and with it the harvest. Leaving the loop early
    (`break`, an exception, KeyboardInterrupt) cancels the producer and waits for it to close
    everything it opened; then the iterator ends, or the exception goes on.
    """
    items: queue.SimpleQueue[Any] = queue.SimpleQueue()
    loop = asyncio.new_event_loop()
    slots = asyncio.Semaphore(buffered)  # bound to `loop` when first awaited there
    started: concurrent.futures.Future[asyncio.Task[None]] = concurrent.futures.Future()

    async def produce() -> None:
        task = asyncio.current_task()
        assert task is not None
        started.set_result(task)
        try:
            async with contextlib.aclosing(start()) as source:
                async for item in source:
                    await slots.acquire()
                    items.put(item)
        except asyncio.CancelledError:  # the consumer left: it reads nothing more
            return
        except BaseException as exc:  # handed to the consumer, which raises it
            items.put(_END)
            items.put(exc)
            return
        items.put(_END)
        items.put(None)

    def work() -> None:
        with asyncio.Runner(loop_factory=lambda: loop) as runner:
            runner.run(produce())

    thread = threading.Thread(target=work, name="harvester-records", daemon=True)
    thread.start()
    try:
        while (item := _take(items)) is not _END:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the producer is done
                loop.call_soon_threadsafe(slots.release)
            yield item
        error = items.get()
        if error is not None:
            raise error
    finally:
        task = started.result()
        with contextlib.suppress(RuntimeError):  # the loop is closed: the producer is done
            loop.call_soon_threadsafe(task.cancel)
        thread.join()


def _take(items: queue.SimpleQueue[Any]) -> Any:
    """The next item; in slices, so that Ctrl-C is acted on while waiting (see run_blocking)."""
    while True:
        with contextlib.suppress(queue.Empty):
            return items.get(timeout=_SIGNAL_CHECK)
