"""Page planners: which request fetches page i, and what a page's answer says about the whole.

Every planner speaks the same small interface, so the runner and the workers never know which
pagination style the API uses. Indexed planners (offset, range, page) can name any page up
front; chain planners (cursor, link, in harvester.chains) learn each page from the one before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Self

# Where values sit in an answer (records, totals, cursors): answer_paths.py. PlanError is
# raised by planners and readers alike, and imported from here by planners' users.
from harvester.answer_paths import PlanError, parse_content_range
from harvester.config import PaginationConfig

__all__ = [
    "Answer",
    "IndexedPlanner",
    "OffsetPlanner",
    "PagePlanner",
    "PageRecords",
    "PageRequest",
    "PlanError",
    "Planner",
    "RangePlanner",
    "make_planner",
]


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What to send for one page: extra query parameters and headers on top of the source's."""

    index: int  # the page's place in its chain (indexed styles: in the whole output)
    first: int = 0  # indexed styles: the offset of the page's first record
    size: int = 0
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None  # a next link, fetched as it is instead of source.url + params
    send_token: bool = True
    chain: int = 0  # the partition window this page belongs to
    key: str | None = None  # the cursor or URL naming this page, for loop protection


@dataclass(frozen=True, slots=True)
class Answer:
    """What a planner sees of one response."""

    status: int
    headers: Mapping[str, str]
    body: Any
    records: list[Any]
    url: str


@dataclass(frozen=True, slots=True)
class PageRecords:
    """The records a planner took from one answer, and where its chain goes next."""

    records: list[Any]
    # True when no page after this one holds records: the answer held everything to the end
    # (a Range server that ignored our Range header), or lay past the end.
    complete: bool = False
    next: PageRequest | None = None


class Planner(Protocol):
    """What every pagination style implements."""

    def is_past_end(self, status: int, request: PageRequest) -> bool:
        """Whether `status` means the page lies past the end of the dataset."""
        ...

    def select(self, request: PageRequest, answer: Answer) -> PageRecords:
        """The records of `request` out of an answer; raises PlanError if they cannot be told."""
        ...


class IndexedPlanner(Planner, Protocol):
    """A style where page i can be requested without knowing page i-1."""

    @property
    def page_size(self) -> int:
        """Records per page."""
        ...

    def request(self, index: int) -> PageRequest:
        """The request for page `index` (0-based, in output order)."""
        ...

    def page_count(self, total: int) -> int:
        """How many pages hold `total` records."""
        ...

    def with_page_size(self, page_size: int) -> IndexedPlanner:
        """The same planner with a smaller page size (the server caps what it sends)."""
        ...

    def bounded(self, total: int | None) -> IndexedPlanner:
        """The same planner, never asking past `total` records from its start (None: unknown)."""
        ...

    def follow_on(self, index: int, count: int) -> PageRequest | None:
        """A request for the records right after the `count` that page `index` held; None where
        the style cannot name them (page numbers count in the server's own page size)."""
        ...


@dataclass(frozen=True)
class _FromStart:
    """Pages of `page_size` records counted from record `start` (offset and range styles)."""

    page_size: int
    start: int

    def request(self, index: int) -> PageRequest:
        raise NotImplementedError

    def page_count(self, total: int) -> int:
        return math.ceil(max(0, total - self.start) / self.page_size)

    def with_page_size(self, page_size: int) -> Self:
        return replace(self, page_size=page_size)

    def bounded(self, total: int | None) -> Self:
        return self

    def follow_on(self, index: int, count: int) -> PageRequest | None:
        if not count:
            return None
        after = self.start + index * self.page_size + count
        return replace(replace(self, start=after).request(0), index=index + 1)


@dataclass(frozen=True)
class OffsetPlanner(_FromStart):
    """`?offset=<first>&limit=<size>`, names configurable."""

    offset_param: str
    limit_param: str
    open_end: bool = False  # total unknown: a 404 may mark the end

    def request(self, index: int) -> PageRequest:
        first = self.start + index * self.page_size
        params = {self.offset_param: str(first), self.limit_param: str(self.page_size)}
        return PageRequest(index=index, first=first, size=self.page_size, params=params)

    def is_past_end(self, status: int, request: PageRequest) -> bool:
        return self.open_end and _not_found_past_first(status, request)

    def select(self, request: PageRequest, answer: Answer) -> PageRecords:
        return PageRecords(_at_most(request.size, answer.records))


@dataclass(frozen=True)
class RangePlanner(_FromStart):
    """`Range: <unit>=<first>-<last>` answered by 206 and `Content-Range`; 416 past the end."""

    unit: str
    total: int | None = None  # records from `start` on, once known: no range asks past them

    def bounded(self, total: int | None) -> Self:
        return replace(self, total=total)

    def request(self, index: int) -> PageRequest:
        first = self.start + index * self.page_size
        last = first + self.page_size - 1
        if self.total is not None:
            # Some servers echo the span asked for in Content-Range, even past the end.
            last = min(last, max(first, self.start + self.total - 1))
        headers = {"Range": f"{self.unit}={first}-{last}"}
        return PageRequest(index=index, first=first, size=self.page_size, headers=headers)

    def is_past_end(self, status: int, request: PageRequest) -> bool:
        return status == 416

    def select(self, request: PageRequest, answer: Answer) -> PageRecords:
        records = answer.records
        if answer.status == 206:
            return PageRecords(self._partial(request, answer.headers, records))
        # 200: the server ignored Range and sent the whole collection. Take our slice of it,
        # and only once: the first page takes everything and ends the harvest.
        if request.index == 0:
            return PageRecords(records[request.first :], complete=True)
        end = request.first + request.size
        if len(records) < request.first:
            raise PlanError(
                f"server ignored the Range header (status 200) and sent {len(records)} records, "
                f"fewer than the {request.first} before this page"
            )
        return PageRecords(records[request.first : end])

    def _partial(
        self, request: PageRequest, headers: Mapping[str, str], records: list[Any]
    ) -> list[Any]:
        content_range = headers.get("Content-Range")
        if content_range is None:
            if not records:  # an empty 206: nothing from here on, the end of the data
                return records
            raise PlanError("status 206 without a Content-Range header")
        first, last, total = parse_content_range(content_range, self.unit)
        if first is None or last is None:
            if not records:  # `items */N`: nothing from here on
                return records
            raise PlanError(f"unusable Content-Range {content_range!r}")
        if first != request.first:
            raise PlanError(f"asked for records from {request.first}, got {content_range!r}")
        asked = request.headers.get("Range", "").partition("=")[2]
        echoed = f"{first}-{last}" == asked.replace(" ", "")
        # A server echoing the span asked for, past the end of the data (or with no total),
        # sends the records it has: a short page, which the scheduler then proves the last.
        past_end = total is None or last >= total
        short = echoed and past_end and len(records) < request.size
        if last - first + 1 != len(records) and not short:
            raise PlanError(
                f"Content-Range {content_range!r} announces {last - first + 1} records, "
                f"the body holds {len(records)}"
            )
        return _at_most(request.size, records)


@dataclass(frozen=True)
class PagePlanner:
    """`?page=<n>&page_size=<size>`, pages counted from `first_page` (0 or 1)."""

    page_size: int
    first_page: int
    page_param: str
    page_size_param: str
    open_end: bool = False  # total unknown: a 404 may mark the end

    def request(self, index: int) -> PageRequest:
        params = {
            self.page_param: str(self.first_page + index),
            self.page_size_param: str(self.page_size),
        }
        first = index * self.page_size
        return PageRequest(index=index, first=first, size=self.page_size, params=params)

    def is_past_end(self, status: int, request: PageRequest) -> bool:
        return self.open_end and _not_found_past_first(status, request)

    def select(self, request: PageRequest, answer: Answer) -> PageRecords:
        return PageRecords(_at_most(request.size, answer.records))

    def page_count(self, total: int) -> int:
        return math.ceil(total / self.page_size)

    def with_page_size(self, page_size: int) -> PagePlanner:
        return replace(self, page_size=page_size)

    def bounded(self, total: int | None) -> PagePlanner:
        return self

    def follow_on(self, index: int, count: int) -> PageRequest | None:
        return None


def _not_found_past_first(status: int, request: PageRequest) -> bool:
    # Django REST Framework and others answer 404 for a page past the end: a sign worth reading
    # when the total is unknown. On the first page a 404 means a wrong URL, and fails as such.
    return status == 404 and request.index > 0


def _at_most(size: int, records: list[Any]) -> list[Any]:
    if len(records) > size:
        raise PlanError(f"asked for {size} records, got {len(records)}")
    return records


def make_planner(config: PaginationConfig) -> IndexedPlanner:
    """The planner for an indexed `pagination.style` (offset, range, page)."""
    if config.style == "page":
        return PagePlanner(
            page_size=config.page_size,
            first_page=config.first_page,
            page_param=config.page_param,
            page_size_param=config.page_size_param,
            open_end=not config.total_known,
        )
    if config.style == "range":
        return RangePlanner(page_size=config.page_size, start=config.start, unit=config.range_unit)
    return OffsetPlanner(
        page_size=config.page_size,
        start=config.start,
        offset_param=config.offset_param,
        limit_param=config.limit_param,
        open_end=not config.total_known,
    )
