"""Chain planners: cursor and link pagination, where each page names the next one.

A chain is sequential by nature; `pagination.partition` splits the key space into windows
[from_k, to_k), each its own chain, so that windows run in parallel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timezone
from typing import Any
from urllib.parse import urljoin, urlsplit

from harvester.config import PaginationConfig, PartitionConfig, SourceConfig, parse_timestamp
from harvester.pagination import Answer, PageRecords, PageRequest, PlanError, read_value


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

    @property
    def chains(self) -> int:
        return len(self.windows)

    def first(self, chain: int) -> PageRequest:
        """The request that starts chain `chain` (window `chain` of the partition)."""
        params = {self.limit_param: str(self.page_size), **self.windows[chain]}
        return PageRequest(index=0, size=self.page_size, params=params, chain=chain)

    def is_past_end(self, status: int, request: PageRequest) -> bool:
        return False

    def select(self, request: PageRequest, answer: Answer) -> PageRecords:
        records = answer.records
        if not records:  # an empty page ends the chain, whatever it says about a next one
            return PageRecords(records)
        if self.style == "link":
            return PageRecords(records, next=self._next_link(request, answer))
        return PageRecords(records, next=self._next_cursor(request, answer))

    def _next_cursor(self, request: PageRequest, answer: Answer) -> PageRequest | None:
        if self.cursor_from_record is not None:
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
            raise PlanError(f"the next URL {url!r} is not http(s)")
        try:
            same_host = _origin(url) == self.origin
        except ValueError as exc:
            raise PlanError(f"the next URL {url!r} is not a valid URL ({exc})") from None
        send_token = same_host or self.allow_cross_host
        return replace(
            request, index=request.index + 1, url=url, params={}, key=url, send_token=send_token
        )


def make_chain_planner(config: PaginationConfig, source: SourceConfig) -> ChainPlanner:
    """The planner for `pagination.style` cursor or link."""
    windows = partition_windows(config.partition) if config.partition else ({},)
    return ChainPlanner(
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


def partition_windows(partition: PartitionConfig) -> tuple[dict[str, str], ...]:
    """The query parameters of each window: `param_from=from_k&param_to=to_k`, in order."""
    bounds = _bounds(partition.start, partition.end, partition.parts)
    return tuple(
        {partition.param_from: low, partition.param_to: high}
        for low, high in zip(bounds, bounds[1:], strict=False)
    )


def _bounds(start: int | str, end: int | str, parts: int) -> list[str]:
    if isinstance(start, int) and isinstance(end, int):
        return [str(start + (end - start) * k // parts) for k in range(parts + 1)]
    assert isinstance(start, str) and isinstance(end, str)
    low = parse_timestamp(start, "pagination.partition.start")
    high = parse_timestamp(end, "pagination.partition.end")
    # Inner bounds on whole seconds; the outer ones exactly as given, so nothing is lost or added.
    inner = [(low + (high - low) * k / parts).replace(microsecond=0) for k in range(1, parts)]
    moments = [low, *inner, high]
    # Bounds are written as the user wrote theirs: a Z suffix stays a Z suffix.
    zulu = start.endswith("Z") or end.endswith("Z")
    zone = low.utcoffset()
    return [_iso(m, zone=None if zulu or not zone else timezone(zone)) for m in moments]


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
