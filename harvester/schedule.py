"""Schedulers for indexed styles: which pages to fetch, whether each fits, where the data ends.

Each of these facts has one owner per pagination family. KnownTotal: the first answer tells the
total (in records or in pages) and every page is checked against the plan made from it.
OpenEnd: no total; the end is found by fetching ahead and trusted only once it is proven.
Chains (cursor, link) end where their own pages say: see harvester.chains.

The sink only orders and writes what a scheduler accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harvester.config import PaginationConfig
from harvester.errors import RecordsError, TotalChangedError, redact_url
from harvester.fetch import Fetched
from harvester.pagination import IndexedPlanner
from harvester.stats import Stats

UrlOf = Callable[[int], str]


def plan_known_total(
    planner: IndexedPlanner,
    first: Fetched,
    pagination: PaginationConfig,
    stats: Stats,
    first_url: str,
) -> dict[str, Any]:
    """What the first page tells of the whole: total records (None where only pages are told),
    pages, and the page size the server really sends."""
    if first.complete:  # the first answer held everything (a Range server ignoring Range)
        return {"total": first.page.count, "pages": 1, "page_size": planner.page_size}
    total: int | None
    if pagination.total_pages is not None:
        pages = _required(first.total_pages, pagination.total_pages, first_url)
        total = first.total
        # A server that caps its page size counts its pages in its own size.
        if pages > 1:
            planner = _fit_page_size(planner, first, stats, first_url, told=f"{pages} pages")
    else:
        total = _required(first.total, pagination.total, first_url)
        start = planner.request(0).first
        if start + first.page.count < total:
            planner = _fit_page_size(planner, first, stats, first_url, told=f"the total {total}")
        pages = planner.page_count(total)
        total = max(0, total - start)
    return {"total": total, "pages": max(1, pages), "page_size": planner.page_size}


def _required(value: int | None, spec: str | None, url: str) -> int:
    if value is None:
        raise RecordsError(f"the first answer does not tell the total ({spec})", page=0, url=url)
    return value


def _fit_page_size(
    planner: IndexedPlanner, first: Fetched, stats: Stats, url: str, *, told: str
) -> IndexedPlanner:
    """A planner whose page size matches what the server sends per page, where the first page
    is short of page_size although more data follows it."""
    count = first.page.count
    if count >= planner.page_size:
        return planner
    if count == 0:
        raise RecordsError(f"the first page is empty, yet the answer tells {told}", page=0, url=url)
    return lowered_page_size(planner, count, stats)


def lowered_page_size(planner: IndexedPlanner, count: int, stats: Stats) -> IndexedPlanner:
    """`planner` with page_size `count`, the most the server sends per page (a warning says so)."""
    stats.warn(
        f"the server sends at most {count} records per page: page_size lowered from "
        f"{planner.page_size} to {count}"
    )
    return planner.with_page_size(count)


class KnownTotal:
    """Fails the run where a page contradicts the plan: the dataset changed while it was read,
    or the server sends another number of records per page than the plan counts on."""

    def __init__(
        self, planner: IndexedPlanner, plan: dict[str, Any], url_of: UrlOf, part: Path
    ) -> None:
        self._planner = planner
        self._start = planner.request(0).first  # the offset the counts are relative to
        self._total: int | None = plan["total"]
        self._pages: int = plan["pages"]
        self._url_of = url_of
        self._part = part

    def check(self, fetched: Fetched) -> bool:
        index, count = fetched.page.index, fetched.page.count
        if fetched.complete:  # the one page there is: the whole collection (Range ignored)
            return True
        if fetched.total is not None and self._total is not None:
            self._same(fetched, fetched.total - self._start, self._total, "records")
        if fetched.total_pages is not None and self._total is None:
            self._same(fetched, fetched.total_pages, self._pages, "pages")
        expected = self._expected(index)
        if count != expected:
            self._fail(index, count, expected)
        return True

    def _same(self, fetched: Fetched, now: int, at_start: int, unit: str) -> None:
        if now != at_start:
            index = fetched.page.index
            shift = self._start if unit == "records" else 0
            raise TotalChangedError(
                page=index,
                url=self._url_of(index),
                total_at_start=at_start + shift,
                total_now=now + shift,
                part=str(self._part),
                unit=unit,
            )

    def _expected(self, index: int) -> int | tuple[int, int]:
        request = self._planner.request(index)
        if self._total is not None:
            return max(0, min(request.size, self._total - (request.first - self._start)))
        if index < self._pages - 1:
            return request.size
        # The last of a page count: anything from one record to a whole page (an empty one
        # only where the dataset is empty).
        return (0 if self._pages == 1 else 1, request.size)

    def _fail(self, index: int, count: int, expected: int | tuple[int, int]) -> None:
        if isinstance(expected, tuple):
            low, high = expected
            if low <= count <= high:
                return
            raise RecordsError(
                f"held {count} records, where the last of {self._pages} pages holds {low} to "
                f"{high}, with the page count unchanged: the data changed during the run",
                page=index,
                url=self._url_of(index),
            )
        if count > expected:
            raise RecordsError(
                f"held {count} records where {expected} were planned, with the total unchanged: "
                "the server holds more records than it tells",
                page=index,
                url=self._url_of(index),
            )
        # Nothing explains the gap but a server sending less than asked: the records in it
        # would never be fetched. Fail rather than write a file that looks complete.
        raise RecordsError(
            f"held {count} records where {expected} were planned, with the total unchanged: "
            f"{expected - count} records would be lost. The server sends fewer records per page "
            f"than asked; set pagination.page_size to at most {count}",
            page=index,
            url=self._url_of(index),
        )


class OpenEnd:
    """No total: hands out pages while the end is unknown, and finds the end, proven.

    An empty page, or one past the end (404, 416), proves that the data ends before it. A short
    page (fewer than page_size records) is the last only once the page after it proves so:
    empty, past the end, or the short page again (a page-number API answering past the end with
    its last page, as every page after it then does too). A page with records after a short or
    an empty one fails the run: the records in between were never asked for, or the data
    changed. The first short page is kept in `plan`, so a resumed run knows it too.

    Pages arrive in any order, so what a page is may only be known once an earlier one comes:
    `wants` tells the sink which pages, fetched and accepted already, it may still write.
    """

    def __init__(self, plan: dict[str, Any], url_of: UrlOf, *, numbered: bool) -> None:
        self._plan = plan
        self._page_size: int = plan["page_size"]
        self._url_of = url_of
        # Page numbers: a page past the end may be answered with the last page again. Asked
        # for by offset or Range, the same records at another place mean the API ignores it.
        self._numbered = numbered
        self._empty: int | None = None  # the first page seen empty or past the end
        self._whole: int | None = None  # the page that held all the rest (Range ignored)
        self._full = -1  # the highest page seen holding page_size records
        self._shorts: dict[int, str] = {}  # digest of each short page seen after the first
        self.discarded = 0

    @property
    def _short(self) -> int | None:
        short: int | None = self._plan.get("short")
        return short

    @property
    def end(self) -> int | None:
        """The first page past the data, once proven: pages 0..end-1 hold all of it."""
        ends = [self._empty, self._whole + 1 if self._whole is not None else None]
        short = self._short
        if short is not None and any(self._repeats_short(i) for i in self._shorts):
            ends.append(short + 1)
        known = [e for e in ends if e is not None]
        return min(known) if known else None

    @property
    def short(self) -> tuple[int, int] | None:
        """(index, records) of the first page that held fewer than page_size records."""
        short = self._short
        return None if short is None else (short, self._plan["short_count"])

    def check_follow_on(self, fetched: Fetched) -> None:
        """Fail unless the answer for the records right after the short page's is empty."""
        short = self.short
        assert short is not None
        index, count = short
        if fetched.page.count and fetched.page.digest() != self._plan.get("short_digest"):
            after = redact_url(fetched.page.url)
            raise RecordsError(
                f"held {count} records, fewer than page_size ({self._page_size}), yet records "
                f"follow right after them ({fetched.page.count} at {after}): the server sent "
                "this page short of its data, so records would be lost",
                page=index,
                url=self._url_of(index),
            )

    def wants(self, index: int) -> bool:
        """Whether page `index` may hold data: it lies before any end proven or suspected."""
        end = self.end
        if end is not None:
            return index < end
        return self._short is None or index <= self._short + 1

    def claims(self, start: int = 0) -> Iterator[int]:
        index = start
        while self.wants(index):
            yield index
            index += 1

    def check(self, fetched: Fetched) -> bool:
        """Whether the page may be part of the data (to be written, while `wants` says so);
        raises where the pages seen cannot all be right."""
        index, count = fetched.page.index, fetched.page.count
        if self._whole is not None and index > self._whole:
            self.discarded += 1  # a later slice of the whole collection, written already
            return False
        if fetched.complete and count:
            self._whole = index if self._whole is None else min(self._whole, index)
        elif count == 0:
            self._empty = index if self._empty is None else min(self._empty, index)
        elif count >= self._page_size:
            self._full = max(self._full, index)
        else:
            self._note_short(index, count, fetched.page.digest())
        self._check_order()
        if not self.wants(index):
            self.discarded += 1
            return False
        return True

    def _note_short(self, index: int, count: int, digest: str) -> None:
        short = self._short
        if not self._numbered and short is not None and digest == self._plan["short_digest"]:
            raise RecordsError(
                f"repeats the records of page {short}, asked for from another offset: the API "
                "ignores the paging parameters (check pagination.offset_param, or range_unit)",
                page=index,
                url=self._url_of(index),
            )
        if short is None or index < short:
            if short is not None:
                self._shorts[short] = self._plan["short_digest"]
            self._plan.update(short=index, short_count=count, short_digest=digest)
        else:
            self._shorts[index] = digest

    def _repeats_short(self, index: int) -> bool:
        short = self._short
        return (
            short is not None
            and index > short
            and self._shorts[index] == self._plan.get("short_digest")
        )

    def _check_order(self) -> None:
        others = [i for i in self._shorts if not self._repeats_short(i)]
        filled = max([self._full, *others])
        end, short = self.end, self._short
        if end is not None and self._whole is None and filled >= end:
            raise RecordsError(
                f"page {filled} holds records although page {end} was empty or past the end: "
                "the data changed during the run",
                page=filled,
                url=self._url_of(filled),
            )
        if short is not None and filled > short:
            raise RecordsError(
                f"page {filled} holds records although page {short} held fewer than page_size "
                f"({self._page_size}): the records in between were never asked for. The server "
                "sends fewer records per page than asked on some pages, or the data changed "
                "during the run",
                page=filled,
                url=self._url_of(filled),
            )
