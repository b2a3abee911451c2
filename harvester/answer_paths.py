"""Where a value sits in an API's answer: the records, a total, a cursor or a next link, at a
dotted path of the body (`data.items`), in a header, or in a JSON-valued header; and
Content-Range. Pure functions of (body, headers), used by every planner and by harvester init.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from harvester.numerals import ascii_int


class PlanError(Exception):
    """An answer that does not fit the page it was asked for."""


_CONTENT_RANGE = re.compile(r"^\s*(\S+)\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.ASCII)


def parse_content_range(value: str, unit: str) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) from `<unit> <first>-<last>/<total>`; None for each `*`.

    Raises PlanError when the header is malformed or speaks of another unit.
    """
    match = _CONTENT_RANGE.match(value)
    if match is None:
        raise PlanError(f"malformed Content-Range {value!r}")
    got_unit, first, last, total = match.groups()
    if got_unit.lower() != unit.lower():  # range units are case-insensitive (RFC 9110 14.1)
        raise PlanError(f"Content-Range unit {got_unit!r}, expected {unit!r}")

    def number(text: str | None) -> int | None:
        return None if text is None or text == "*" else int(text)

    return number(first), number(last), number(total)


class MissingPath(Exception):
    """A dotted path that is not in the body; `keys` lists what was there instead."""

    def __init__(self, path: str, *, at: str, keys: list[str]) -> None:
        shown = ", ".join(keys[:20]) if keys else "none"
        super().__init__(f"{path!r} not found: no {at!r} (keys there: {shown})")
        self.path = path
        self.keys = keys


def lookup(body: Any, path: str) -> Any:
    """The value at a dotted path (`data.items`, `meta.page.0`); the body itself for ''."""
    node = body
    walked: list[str] = []
    for part in path.split(".") if path else []:
        walked.append(part)
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif (
            isinstance(node, list) and (index := ascii_int(part)) is not None and index < len(node)
        ):
            node = node[index]
        else:
            keys = [str(k) for k in node] if isinstance(node, dict) else []
            raise MissingPath(path, at=".".join(walked), keys=keys)
    return node


def extract_records(body: Any, path: str) -> list[Any]:
    """The list of records at `source.records` (the body itself when the path is empty)."""
    records = lookup(body, path)
    if not isinstance(records, list):
        where = f"{path!r}" if path else "the body"
        raise PlanError(f"{where} is {type(records).__name__}, not a list of records")
    return records


def read_value(spec: str, body: Any, headers: Mapping[str, str]) -> Any:
    """The value at `body:<path>`, `header:<Name>` or `header:<Name>.<path>` (a JSON-valued
    header); None when the answer has none."""
    kind, _, arg = spec.partition(":")
    try:
        if kind == "header":
            return header_value(headers, arg)
        return lookup(body, arg)
    except MissingPath:
        return None


def header_value(headers: Mapping[str, str], spec: str) -> Any:
    """The header `Name` of `Name` or `Name.<dotted.path>`: for a path, the value at it in the
    header's JSON (`X-Pagination: {"total": 25000}`). None when the header is absent; raises
    MissingPath where the path is not in it, PlanError where the header is not JSON."""
    name, dot, path = spec.partition(".")
    raw = headers.get(name) if dot else headers.get(spec)
    if raw is None or not dot:
        return raw
    try:
        data = json.loads(raw)
    except ValueError:
        raise PlanError(f"header {name} is not JSON: {raw[:80]!r}") from None
    return lookup(data, path)


def read_total(spec: str, body: Any, headers: Mapping[str, str], unit: str) -> int | None:
    """The dataset's total from `pagination.total`; None when this answer does not say."""
    kind, _, arg = spec.partition(":")
    raw: Any
    if spec == "unknown":
        return None
    if spec == "content-range":
        header = headers.get("Content-Range")
        if header is None:
            return None
        return parse_content_range(header, unit)[2]
    if kind == "header":
        raw = header_value(headers, arg)
        if raw is None:
            return None
    else:
        raw = lookup(body, arg)
        if raw is None:
            return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise PlanError(f"total at {spec!r} is {raw!r}, not a whole number")
    try:
        total = int(raw)
    except ValueError:
        raise PlanError(f"total at {spec!r} is {raw!r}, not a whole number") from None
    if total < 0:
        raise PlanError(f"total at {spec!r} is negative: {total}")
    return total
