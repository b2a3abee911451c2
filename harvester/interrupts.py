"""Ctrl-C and the notebook's interrupt, for the Python API: a graceful stop, then a message
that says how to resume from Python (not from the command line)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from harvester.errors import Interrupted
from harvester.stop import Stop

log = logging.getLogger("harvester")

KEYBOARD_INTERRUPT = "KeyboardInterrupt"


def request_stop(stop: Stop, reason: str) -> None:
    """Ask `stop` to stop, gracefully the first time, at once the next; in the harvest's loop."""
    if stop.requested:
        log.warning("%s again: stopping at once", reason)
        stop.request(reason, at_once=True)
        return
    log.warning(
        "%s: stopping; pages in flight get %g s to finish (again to stop at once)",
        reason,
        stop.grace,
    )
    stop.request(reason)


def stopping_on_interrupt(stop: Stop) -> contextlib.AbstractContextManager[None]:
    """Make Ctrl-C (SIGINT) a graceful stop of the harvest running in this loop (on_interrupt)."""
    return on_interrupt(functools.partial(request_stop, stop, KEYBOARD_INTERRUPT))


@contextlib.contextmanager
def on_interrupt(callback: Callable[[], None]) -> Iterator[None]:
    """Have Ctrl-C (SIGINT) call `callback` in this loop while the body runs.

    Only on the main thread, and only where the handler in place is Python's default,
    asyncio.run's (which would cancel the harvest, losing its pages in flight) or a Jupyter
    kernel's (which cancels a cell's coroutine: a bare CancelledError); a program with a
    handler of its own keeps it. SIGTERM is left to the program: a library has no business
    deciding what it means. The handler found is put back when the harvest ends.
    """
    loop = asyncio.get_running_loop()
    if threading.current_thread() is not threading.main_thread() or not _replaceable(
        signal.getsignal(signal.SIGINT)
    ):
        yield
        return
    saved = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (NotImplementedError, RuntimeError, ValueError):  # no such support in this loop
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, saved)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While the main thread blocks on a harvest in another thread, let Ctrl-C raise
    KeyboardInterrupt there (to be turned into a stop), whatever loop handler was in place: that
    loop cannot run its handler while this thread blocks. SIG_IGN is respected."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = signal.getsignal(signal.SIGINT)
    if saved in (signal.SIG_IGN, None):
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


def _replaceable(handler: Any) -> bool:
    """Whether `handler` is Python's own SIGINT handler, asyncio.run's, or a Jupyter kernel's
    while it runs a cell."""
    if handler is signal.default_int_handler:
        return True
    method = getattr(handler, "func", handler)  # asyncio.Runner's is a functools.partial
    if isinstance(getattr(method, "__self__", None), asyncio.Runner):
        return True
    return in_notebook() and "ipykernel" in (getattr(handler, "__module__", None) or "")


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (ipykernel), where a widget can be shown."""
    kernel_app = sys.modules.get("ipykernel.kernelapp")
    if kernel_app is None:
        return False
    try:
        return bool(kernel_app.IPKernelApp.initialized())
    except AttributeError:  # another ipykernel than the one this was written against
        return False


_CLI_HINT = re.compile(r"run the same command (without --fresh )?again to resume")


def resumable(exc: Interrupted, *, fresh: bool) -> Interrupted:
    """The Interrupted a stopped harvest raised, its hint said for Python users."""
    hint = (
        "call harvester.harvest() again with the same config"
        + (" and without fresh=True" if fresh else "")
        + " to resume, or with fresh=True to start over"
    )
    message, found = _CLI_HINT.subn(hint, exc.message)
    again = Interrupted(message if found else exc.message, signal=exc.signal)
    _one_line_in_ipython(again)
    return again


def nothing_kept(reason: str) -> Interrupted:
    """The Interrupted of a harvest whose output is thrown away (stream, to_arrow)."""
    again = Interrupted(
        f"stopped by {reason}: nothing is kept; call it again to start over", signal=reason
    )
    _one_line_in_ipython(again)
    return again


def _one_line_in_ipython(exc: BaseException) -> None:
    # IPython shows an exception through its _render_traceback_() where it has one: a stop the
    # user asked for shows as its one line (what was kept, how to resume), not as a traceback
    # through asyncio's and harvester's internals.
    line = f"{type(exc).__name__}: {exc}"
    exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
