"""The progress display: one line fitted to the terminal, log lines, or a notebook widget.

`watch(stats, mode=...)` shows how a run is going while inside it. It reads the run's Stats
from a thread of its own, so it works the same around `asyncio.run(...)`, around an awaited run
inside a running event loop (Jupyter) and around a run on another thread. tqdm draws: it sizes
the bar, redraws the line in place, prints log records above it (tqdm.write) and, in Jupyter,
shows an ipywidgets progress bar. What the line says, and which fields go when the terminal is
narrow, progress_line.py decides.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TextIO

from harvester.interrupts import in_notebook
from harvester.logs import PROGRESS_FIELDS
from harvester.progress_line import Snapshot, layout, plain_line, snapshot
from harvester.stats import Stats

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["LOG_INTERVAL", "MODES", "Mode", "Snapshot", "in_notebook", "snapshot", "watch"]

Mode = Literal["auto", "bar", "log", "notebook", "none"]
MODES: tuple[Mode, ...] = ("auto", "bar", "log", "notebook", "none")

# Seconds between progress log lines (mode "log"), and between redraws of the line or widget.
# Module constants so that a test can shorten them.
LOG_INTERVAL = 10.0
REDRAW_INTERVAL = 0.2
# Where no terminal says how wide a line may be: Jupyter's text output without ipywidgets.
_NOTEBOOK_WIDTH = 100

log = logging.getLogger("harvester")


@contextlib.contextmanager
def watch(
    stats: Stats,
    *,
    mode: Mode = "auto",
    max_records: int | None = None,
    stream: TextIO | None = None,
) -> Iterator[None]:
    """Show the progress of the run counting into `stats` while inside.

    "bar": one line on `stream` (stderr), fitted to the terminal, log records printed above
    it; "log": a log line every LOG_INTERVAL seconds; "notebook": a Jupyter widget (a text
    line updated in place when ipywidgets is missing); "none": nothing; "auto": notebook under
    ipykernel, bar when `stream` is a terminal, log otherwise. `max_records`: the percentage
    and ETA count toward min(total, max_records).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    out = sys.stderr if stream is None else stream
    chosen = _choose(mode, out)
    if chosen == "none":
        yield
        return
    if chosen == "log":

        def say() -> None:
            snap = snapshot(stats, max_records=max_records)
            log.info("progress: %s", plain_line(snap), extra={PROGRESS_FIELDS: snap.counters()})

        with _ticking(LOG_INTERVAL, say):
            yield
        return
    view = _View(chosen, out)
    redraw = _ticking(REDRAW_INTERVAL, lambda: view.show(stats, max_records))
    try:
        with _logs_above(view), redraw:
            yield
    finally:
        view.close(stats, max_records)


def _choose(mode: Mode, out: TextIO) -> Mode:
    if mode != "auto":
        return mode
    if in_notebook():
        return "notebook"
    isatty = getattr(out, "isatty", None)
    return "bar" if isatty is not None and isatty() else "log"


def _widgets() -> bool:
    """Whether ipywidgets (the `jupyter` extra) is there for tqdm to draw a notebook widget."""
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):  # a module of that name, set to None or half-loaded
        return False


@contextlib.contextmanager
def _ticking(every: float, tick: Callable[[], None]) -> Iterator[None]:
    """Call `tick` every `every` seconds (the first time after `every`) from a thread of its
    own while inside."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every):
            _safely(tick)

    thread = threading.Thread(target=loop, name="harvester-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _safely(tick: Callable[[], None]) -> None:
    # The run's thread may change a Counter in Stats while this one reads it; skipping one
    # redraw is the cheap answer to that rare race.
    with contextlib.suppress(RuntimeError):
        tick()


@contextlib.contextmanager
def _logs_above(view: _View) -> Iterator[None]:
    """Log records printed above the line (tqdm.write), never glued onto it."""
    if view.widget:  # the widget lives apart from the text output: nothing to move
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    # Only loggers that print to the console: the root logger of a library user who called
    # basicConfig(), harvester's own under the CLI. Their filters (secret masking) stay on.
    loggers = [lg for lg in (log, logging.getLogger()) if _prints_to_console(lg)]
    with logging_redirect_tqdm(loggers=loggers, tqdm_class=view.kind):
        yield


def _prints_to_console(logger: logging.Logger) -> bool:
    return any(
        isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.stderr)
        for h in logger.handlers
    )


class _View:
    """A tqdm line (or notebook widget) showing Snapshots, made at the first redraw: by then
    the run has loaded its checkpoint, so a resumed run never shows as a fresh one."""

    def __init__(self, mode: Mode, out: TextIO) -> None:
        self.widget = mode == "notebook" and _widgets()
        # A notebook without widgets shows text: no terminal there to ask for a width, and
        # the line stays when done. A terminal's line goes at the end: the summary follows.
        self._notebook = mode == "notebook"
        self._out = out
        self._lock = threading.Lock()
        self.bar: tqdm[Any] | None = None
        self.kind = self._kind()

    def _kind(self) -> type[tqdm[Any]]:
        if self.widget:
            from tqdm.notebook import tqdm as notebook_tqdm

            class Widget(notebook_tqdm):  # type: ignore[type-arg]
                monitor_interval = 0  # no monitor thread: ours redraws

            return Widget
        from tqdm import tqdm as std_tqdm

        class Line(std_tqdm):  # type: ignore[type-arg]
            monitor_interval = 0

        return Line

    def _width(self) -> int | None:
        if self.widget:
            return None
        if self._notebook:
            return _NOTEBOOK_WIDTH
        try:
            columns = os.get_terminal_size(self._out.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = shutil.get_terminal_size().columns
        # One column short of the edge: some terminals wrap as soon as the last one is written.
        return max(1, (columns or 80) - 1)

    def show(self, stats: Stats, max_records: int | None) -> None:
        snap = snapshot(stats, max_records=max_records)
        width = self._width()
        with self._lock:
            if self.bar is None:
                self.bar = self._make(snap, width)
            bar = self.bar
            if snap.target != bar.total:
                if self.widget:
                    bar.reset(total=snap.target)  # the widget's bar takes the new end too
                else:
                    bar.total = snap.target
            bar.n = snap.records if snap.target is None else min(snap.records, snap.target)
            bar.ncols = width
            bar.bar_format = layout(snap, width)
            bar.refresh()

    def _make(self, snap: Snapshot, width: int | None) -> tqdm[Any]:
        if self.widget:
            return self.kind(total=snap.target, bar_format=layout(snap, None), leave=True)
        return self.kind(
            total=snap.target,
            bar_format=layout(snap, width),
            ncols=width,
            file=self._out,
            leave=self._notebook,
            dynamic_ncols=False,
        )

    def close(self, stats: Stats, max_records: int | None) -> None:
        if self._notebook:
            self.show(stats, max_records)  # the last numbers, for the line that stays
        with self._lock:
            if self.bar is not None:
                self.bar.close()
