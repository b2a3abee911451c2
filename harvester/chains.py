"""Chain planners: cursor and link pagination, where each page names the next one.

A chain is sequential by nature; `pagination.partition` splits the key space into windows
[from_k, to_k), each its own chain, so that windows run in parallel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urljoin, urlsplit

from harvester.answer_paths import PlanError, read_value
from harvester.config import PaginationConfig, PartitionConfig, SourceConfig, parse_timestamp
from harvester.errors import redact_url
from harvester.numerals import ascii_int
from harvester.pagination import Answer, PageRecords, PageRequest


@dataclass(frozen=True)
class ChainPlanner:
    """Cursor (`next_cursor` or `cursor_from_record`) or link (`next_url`) pagination."""

    style: str
    page_size: int
    limit_param: str
    cursor_param: str = "cursor"
    next_cursor: str | None = None
    cursor_from_record: str | None = None
    next_url: str = "link-header"
    allow_cross_host: bool = False
    origin: tuple[str, str, int | None] = ("", "", None)
    windows: tuple[dict[str, str], ...] = field(default_factory=lambda: ({},))
    # With partition.key: each window's [low, high), and the record field that must fall in it.
    bounds: tuple[tuple[Bound, Bound], ...] = ()
    key: str | None = None

    @property
    def chains(self) -> int:
        return len(self.windows)

    def only(self, low: int, end: int) -> ChainPlanner:
        """The planner of windows [low, end) alone (a shard's slice), numbered from 0."""
        if (low, end) == (0, self.chains):
            return self
        return replace(self, windows=self.windows[low:end], bounds=self.bounds[low:end])

    def first(self, chain: int) -> PageRequest:
        """The request that starts chain `chain` (window `chain` of the partition)."""
        params = {self.limit_param: str(self.page_size), **self.windows[chain]}
        return PageRequest(index=0, size=self.page_size, params=params, chain=chain)

    def is_past_end(self, status: int, request: PageRequest) -> bool:
        return False

    def select(self, request: PageRequest, answer: Answer) -> PageRecords:
        records = answer.records
        if self.style == "link":
            following = self._next_link(request, answer)
        else:
            following = self._next_cursor(request, answer)
        # An empty page carrying a new cursor or link goes on (scan-style APIs filter pages
        # empty on the server); one with none, or the very one just sent, ends the chain.
        if not records and (following is None or following.key == request.key):
            return PageRecords(records)
        if self.key is not None:
            self._check_keys(request.chain, records)
        return PageRecords(records, next=following)

    def _check_keys(self, chain: int, records: list[Any]) -> None:
        assert self.key is not None
        low, high = self.bounds[chain]
        for record in records:
            value = record.get(self.key) if isinstance(record, dict) else None
            if not _inside(_comparable(value, low), low, high):
                raise PlanError(
                    f"a record's {self.key} is {value!r}, outside window {chain} "
                    f"[{_shown(low)}, {_shown(high)}) (pagination.partition.key): the API does "
                    "not filter on the window as configured; if its upper filter includes its "
                    "bound (e.g. id_lte), set pagination.partition.to_inclusive: true"
                )

    def _next_cursor(self, request: PageRequest, answer: Answer) -> PageRequest | None:
        if self.cursor_from_record is not None:
            if not answer.records:
                return None
            last = answer.records[-1]
            if not isinstance(last, dict) or last.get(self.cursor_from_record) is None:
                raise PlanError(
                    f"the last record has no {self.cursor_from_record!r} "
                    "(pagination.cursor_from_record)"
                )
            cursor: Any = last[self.cursor_from_record]
        else:
            assert self.next_cursor is not None
            cursor = read_value(self.next_cursor, answer.body, answer.headers)
        if cursor is None or cursor == "":
            return None
        if not isinstance(cursor, str | int | float) or isinstance(cursor, bool):
            raise PlanError(f"the next cursor is {cursor!r}, not a string or number")
        text = str(cursor)
        params = {**self.first(request.chain).params, self.cursor_param: text}
        return replace(request, index=request.index + 1, params=params, key=text)

    def _next_link(self, request: PageRequest, answer: Answer) -> PageRequest | None:
        if self.next_url == "link-header":
            target = next_link(", ".join(_all_values(answer.headers, "Link")))
        else:
            value = read_value(self.next_url, answer.body, answer.headers)
            if value is not None and not isinstance(value, str):
                raise PlanError(f"the next URL at {self.next_url!r} is {value!r}, not a string")
            target = value or None
        if target is None:
            return None
        url = urljoin(answer.url, target)  # relative links resolve against the request URL
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise PlanError(f"the next URL {redact_url(url)!r} is not http(s)")
        try:
            same_host = _origin(url) == self.origin
        except ValueError as exc:
            shown = redact_url(url)
            raise PlanError(f"the next URL {shown!r} is not a valid URL ({exc})") from None
        send_token = same_host or self.allow_cross_host
        return replace(
            request, index=request.index + 1, url=url, params={}, key=url, send_token=send_token
        )


def make_chain_planner(config: PaginationConfig, source: SourceConfig) -> ChainPlanner:
    """The planner for `pagination.style` cursor or link."""
    partition = config.partition
    windows = partition_windows(partition) if partition else ({},)
    bounds = window_bounds(partition) if partition else []
    return ChainPlanner(
        bounds=tuple(zip(bounds, bounds[1:], strict=False)),
        key=partition.key if partition else None,
        style=config.style,
        page_size=config.page_size,
        limit_param=config.limit_param,
        cursor_param=config.cursor_param,
        next_cursor=config.next_cursor,
        cursor_from_record=config.cursor_from_record,
        next_url=config.next_url or "link-header",
        allow_cross_host=config.allow_cross_host,
        origin=_origin(source.url),
        windows=windows,
    )


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in; ValueError on a bad port."""
    parts = urlsplit(url)
    return (parts.scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme))


def _all_values(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)  # a multidict: every line of a repeated header
    if getall is not None:
        return list(getall(name, []))
    value = headers.get(name)
    return [] if value is None else [value]


# --- partition windows -----------------------------------------------------------------------


Bound = int | datetime


def partition_windows(partition: PartitionConfig) -> tuple[dict[str, str], ...]:
    """The query parameters of each window, in order: `param_from=from_k&param_to=to_k`, or
    with `to_inclusive` the last key before to_k (to_k - 1; a microsecond before, for times)."""
    bounds = window_bounds(partition)
    shown = _written(partition, bounds)
    uppers = shown[1:]
    if partition.to_inclusive:
        uppers = _written(partition, [_just_before(b) for b in bounds[1:]])
    return tuple(
        {partition.param_from: low, partition.param_to: high}
        for low, high in zip(shown, uppers, strict=False)
    )


def window_bounds(partition: PartitionConfig) -> list[Bound]:
    """from_0, to_0 = from_1, ..., to_last: the windows' bounds, as integers or times."""
    start, end, parts = partition.start, partition.end, partition.parts
    if isinstance(start, int) and isinstance(end, int):
        return [start + (end - start) * k // parts for k in range(parts + 1)]
    assert isinstance(start, str) and isinstance(end, str)
    low = parse_timestamp(start, "pagination.partition.start")
    high = parse_timestamp(end, "pagination.partition.end")
    # Inner bounds on whole seconds; the outer ones exactly as given, so nothing is lost or added.
    inner = [(low + (high - low) * k / parts).replace(microsecond=0) for k in range(1, parts)]
    return [low, *inner, high]


def _just_before(bound: Bound) -> Bound:
    if isinstance(bound, int):
        return bound - 1
    return bound - timedelta(microseconds=1)


def _written(partition: PartitionConfig, bounds: list[Bound]) -> list[str]:
    """Bounds as query values; times as the user wrote theirs: a Z suffix stays a Z suffix."""
    start, end = partition.start, partition.end
    if isinstance(start, int) and isinstance(end, int):
        return [str(b) for b in bounds]
    assert isinstance(start, str) and isinstance(end, str)
    zulu = start.endswith("Z") or end.endswith("Z")
    zone = parse_timestamp(start, "pagination.partition.start").utcoffset()
    times = [b for b in bounds if isinstance(b, datetime)]
    return [_iso(m, zone=None if zulu or not zone else timezone(zone)) for m in times]


def _comparable(value: Any, like: Bound) -> Bound | None:
    """A record's key as a bound's type (an integer or a time); None if it cannot be one."""
    if isinstance(value, bool):
        return None
    if isinstance(like, int):
        if isinstance(value, int):
            return value
        return ascii_int(value, signed=True) if isinstance(value, str) else None
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _inside(key: Bound | None, low: Bound, high: Bound) -> bool:
    if isinstance(key, int) and isinstance(low, int) and isinstance(high, int):
        return low <= key < high
    if isinstance(key, datetime) and isinstance(low, datetime) and isinstance(high, datetime):
        return low <= key < high
    return False


def _shown(bound: Bound) -> str:
    return str(bound) if isinstance(bound, int) else _iso(bound, zone=None)


def _iso(moment: datetime, *, zone: timezone | None) -> str:
    if zone is None:
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return moment.astimezone(zone).isoformat()


# --- RFC 8288 Link header --------------------------------------------------------------------

_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,=\s]+(?:\s*=\s*(?:\"(?:[^\"\\]|\\.)*\"|[^;,]*))?)*)")
_PARAM = re.compile(r";\s*([^;,=\s]+)(?:\s*=\s*(\"(?:[^\"\\]|\\.)*\"|[^;,]*))?")


def parse_link_header(value: str) -> list[tuple[str, Mapping[str, str]]]:
    """Each link of a Link header as (target, parameters), parameter names lower-cased."""
    links: list[tuple[str, Mapping[str, str]]] = []
    for match in _LINK.finditer(value):
        params: dict[str, str] = {}
        for name, raw in _PARAM.findall(match.group(2)):
            text = raw.strip()
            if text.startswith('"') and text.endswith('"') and len(text) >= 2:
                text = re.sub(r"\\(.)", r"\1", text[1:-1])
            params.setdefault(name.lower(), text)
        links.append((match.group(1).strip(), params))
    return links


def next_link(value: str) -> str | None:
    """The target of the first link whose rel includes "next"; None if there is none."""
    for target, params in parse_link_header(value):
        if "next" in params.get("rel", "").lower().split():
            return target
    return None
