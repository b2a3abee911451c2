"""The progress line: what it says, read from a run's Stats, and which fields go first when
the terminal is narrow, so that the line never wraps. Pure text; harvester/progress.py draws it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from harvester.stats import Stats

__all__ = ["Snapshot", "layout", "plain_line", "snapshot"]

_MIN_BAR = 10  # cells: a shorter bar says nothing, the fields are worth more
_SEPARATOR = "  "


@dataclass(frozen=True)
class Snapshot:
    """What the display shows, read from a run's Stats at one moment."""

    records: int  # written so far, those of the run resumed from included
    target: int | None  # where the run ends: min(total, max_records), when either is known
    resumed: int  # records an earlier run had written (0: a fresh run)
    elapsed: float  # seconds of this run
    rate: float  # this run's records per second (resumed ones do not count)
    retries: int
    cool_downs: int
    limit: int | None  # the concurrency limit now
    rate_limit: float | None  # requests per second, set or learned
    quota_wait: float  # seconds until a long quota resets (0: none holds the run)

    @property
    def share(self) -> float | None:
        """Done, from 0 to 1, when the target is known."""
        if not self.target:
            return None
        return min(1.0, self.records / self.target)

    @property
    def eta(self) -> float | None:
        """Seconds left at this run's pace, when the target and a pace are known."""
        if self.target is None or self.rate <= 0:
            return None
        return max(0, self.target - self.records) / self.rate

    def counters(self) -> dict[str, Any]:
        """The fields of a progress line in --log-format json."""
        share, eta = self.share, self.eta
        return {
            "records": self.records,
            "target_records": self.target,
            "percent": None if share is None else round(share * 100, 1),
            "records_per_second": round(self.rate, 1),
            "elapsed_seconds": round(self.elapsed, 1),
            "eta_seconds": None if eta is None else round(eta, 1),
            "resumed_records": self.resumed,
            "retries": self.retries,
            "cool_downs": self.cool_downs,
            "concurrency_limit": self.limit,
            "rate_limit": self.rate_limit,
            "quota_wait_seconds": round(self.quota_wait, 1),
        }


def snapshot(stats: Stats, *, max_records: int | None = None, now: float | None = None) -> Snapshot:
    """`stats` as the display shows it; `max_records` caps the target (--max-records)."""
    # Before the resumed sink has loaded its state, records is still 0 while resumed is known.
    records = max(stats.records, stats.resumed_records)
    targets = [n for n in (stats.total_records, max_records) if n is not None]
    elapsed = max(stats.elapsed, 1e-9)
    quota_wait = (stats.quota_reset_at or 0.0) - (time.time() if now is None else now)
    return Snapshot(
        records=records,
        target=min(targets) if targets else None,
        resumed=stats.resumed_records,
        elapsed=stats.elapsed,
        rate=max(0, records - stats.resumed_records) / elapsed,
        # A plain sum over the Counter's values runs in C, never between two of the loop
        # thread's updates (see _Ticker for the rare case it does).
        retries=sum(stats.retries.values()),
        cool_downs=stats.cool_downs,
        limit=stats.concurrency_limit,
        rate_limit=stats.rate_limit,
        quota_wait=max(0.0, quota_wait),
    )


_BAR = "|{bar}|"  # tqdm fills {bar} with as many cells as the line has room for


def layout(snap: Snapshot, width: int | None, *, bar: bool = True) -> str:
    """The progress line as a tqdm bar_format: fields in display order, those of least worth
    dropped until the line fits `width` columns (None: no limit). `{bar}` stands where the bar
    goes (only when `bar` and the target is known); braces in the text are doubled."""
    fields = _fields(snap, bar=bar)
    if width is not None:
        while len(fields) > 1 and _length(fields) > width:
            fields.remove(max(fields, key=lambda field: field[0]))
        if _length(fields) > width:  # one field, still too wide: cut it
            rank, text = fields[0]
            fields = [(rank, _escape(_render(text)[: max(width, 0)]))]
    return _join([text for _, text in fields])


def plain_line(snap: Snapshot) -> str:
    """Every field, no bar: the line a log record carries."""
    return _render(layout(snap, None, bar=False))


def _fields(snap: Snapshot, *, bar: bool) -> list[tuple[int, str]]:
    """(rank, text) in display order; the lower the rank, the longer a field is kept."""
    share, eta = snap.share, snap.eta
    found: list[tuple[int, str]] = []
    if share is not None:
        found.append((1, f"{int(share * 100)}%"))  # never 100% before the end
    if share is not None and bar:
        found.append((6, _BAR))
    total = f"/{snap.target:,}" if snap.target is not None else ""
    found.append((0, f"{snap.records:,}{total} records"))
    if snap.quota_wait > 0:
        found.append((2, f"quota resets in {_clock(snap.quota_wait)}"))
    found.append((3, f"{snap.rate:,.0f} rec/s"))
    if eta is not None:
        found.append((4, f"ETA {_clock(eta)}"))
    if snap.resumed:
        found.append((5, f"resumed at {snap.resumed:,}"))
    found.append((7, f"{_clock(snap.elapsed)} elapsed"))
    found.append((8, f"retries {snap.retries:,}"))
    if snap.cool_downs:
        found.append((9, f"cool-downs {snap.cool_downs:,}"))
    if snap.limit is not None:
        found.append((10, f"limit {snap.limit}"))
    if snap.rate_limit is not None:
        found.append((11, f"rate {snap.rate_limit:g}/s"))
    return [(rank, text if text == _BAR else _escape(text)) for rank, text in found]


def _join(texts: list[str]) -> str:
    line = ""
    for text in texts:
        # The bar sits right after the percentage: "42%|####      | 4,200/10,000 records".
        if not line or text == _BAR:
            separator = ""
        elif line.endswith(_BAR):
            separator = " "
        else:
            separator = _SEPARATOR
        line += separator + text
    return line


def _length(fields: list[tuple[int, str]]) -> int:
    """Columns the joined fields take, the bar at its shortest."""
    return len(_render(_join([text for _, text in fields]), bar_cells=_MIN_BAR))


def _render(line: str, *, bar_cells: int = 0) -> str:
    """A layout as text, the bar as `bar_cells` placeholder cells."""
    return line.format(bar="#" * bar_cells)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _clock(seconds: float) -> str:
    """0:07, 12:34, 1:02:03."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"
