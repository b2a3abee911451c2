"""What one answer shows of an API's paging: where the records are, which field is their key,
where the total is, a next link or cursor, echoed paging parameters. Pure functions of the
decoded body and the headers, so that a table of real answers tests them.

Each finder returns the path in the config's own notation (`body:meta.total`, `header:Name`),
so that what init writes is what it found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from harvester.chains import next_link

# Names lists of records go by, most telling first; a list elsewhere is found too.
RECORD_NAMES = (
    "items", "results", "data", "records", "rows", "entries", "objects", "values",
    "content", "hits", "list", "elements", "nodes", "result", "response", "payload",
)  # fmt: skip
KEY_NAMES = ("id", "_id", "uuid", "key", "pk", "ID", "Id")
# A total's name, lower-cased without _ and -: these, then any holding "total".
TOTAL_NAMES = (
    "total", "count", "totalcount", "totalitems", "totalresults", "totalrecords",
    "totalelements", "filteredtablerowscount", "recordstotal", "numresults", "totalhits",
    "totalsize", "resultcount", "itemcount", "numfound", "found", "items",
)  # fmt: skip
TOTAL_PAGE_NAMES = ("totalpages", "pages", "pagecount", "numpages", "lastpage", "pagestotal")
TOTAL_HEADERS = (
    "X-Total-Count", "X-Total", "Total-Count", "X-Total-Results", "X-Result-Count",
    "X-Pagination-Total-Count", "X-Count", "X-Total-Items",
)  # fmt: skip
CURSOR_HEADERS = (
    "X-Next-Cursor", "X-Next-Page-Token", "Next-Cursor", "X-Cursor", "X-Next", "X-Continuation",
    "X-Next-Token",
)  # fmt: skip
# Names a next cursor goes by in a body (lower-cased, without _ and -).
CURSOR_NAMES = (
    "nextcursor", "nextpagetoken", "nexttoken", "next", "cursor", "after", "endcursor",
    "continuation", "continuationtoken", "nextpage", "nextkey", "scrollid", "startingafter",
)  # fmt: skip
# Paging parameters an answer may echo, or a next link may carry (see paging.py).
OFFSET_NAMES = ("offset", "_start", "start", "skip", "from")
LIMIT_NAMES = ("limit", "_limit", "page_size", "pageSize", "per_page", "perPage", "size", "_size")
PAGE_NAMES = ("page", "_page", "page_number", "pageNumber", "p", "currentPage", "current_page")
UPDATED_NAMES = (
    "updatedat", "updated", "modifiedat", "modified", "lastmodified", "changedat",
    "lastupdated", "updatetime", "modifiedtime", "datemodified", "mtime",
)  # fmt: skip
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", re.ASCII)
_MAX_DEPTH = 3


@dataclass(frozen=True)
class Records:
    """The list of records an answer holds, and where."""

    path: str  # dotted; "" for the body itself
    records: list[Any]
    arrays: bool = False  # rows are lists of values, not objects


def _norm(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _walk(body: Any, path: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every value in `body`'s objects, to a few levels deep."""
    if not isinstance(body, dict) or depth > _MAX_DEPTH:
        return
    for key, value in body.items():
        if not isinstance(key, str) or "." in key:
            continue  # a dotted path cannot name it
        where = f"{path}.{key}" if path else key
        yield where, value
        yield from _walk(value, where, depth + 1)


def _last(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def find_records(body: Any) -> Records | None:
    """The answer's list of records: the body itself, or its likeliest list of objects."""
    if isinstance(body, list):
        return Records("", body, arrays=_arrays(body))
    found: list[tuple[int, int, int, str, list[Any]]] = []
    for path, value in _walk(body):
        if not isinstance(value, list) or not (_objects(value) or _arrays(value)):
            continue
        name = _last(path).lower()
        rank = RECORD_NAMES.index(name) if name in RECORD_NAMES else len(RECORD_NAMES)
        # A known name first, objects before arrays, a long list before a short one.
        found.append((rank, int(_arrays(value)), path.count("."), path, value))
    if not found:
        empty = [path for path, value in _walk(body) if value == []]
        return Records(empty[0], []) if empty else None
    found.sort(key=lambda f: (f[0], f[1], -len(f[4]), f[2]))
    _, arrays, _, path, records = found[0]
    return Records(path, records, arrays=bool(arrays))


def _objects(value: list[Any]) -> bool:
    return bool(value) and all(isinstance(item, dict) for item in value)


def _arrays(value: list[Any]) -> bool:
    return bool(value) and all(isinstance(item, list) for item in value)


def key_field(records: list[Any]) -> str | None:
    """A field that tells the records apart: `id` and its kin, else one ending in id."""
    if not _objects(records):
        return None
    fields = [name for name in records[0] if all(name in r for r in records)]
    named = [n for n in KEY_NAMES if n in fields]
    others = [n for n in fields if n.lower().endswith("id") and n not in named]
    for name in named + others:
        values = [r[name] for r in records]
        if all(isinstance(v, int | str) and not isinstance(v, bool) for v in values) and len(
            set(values)
        ) == len(values):
            return str(name)
    return None


def identity(record: Any, key: str | None) -> Any:
    """What tells `record` apart from the others: its key, or all of it."""
    if key is not None and isinstance(record, dict) and key in record:
        return ("key", record[key])
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=str)


def body_total(body: Any, records: Records, *, pages: bool = False) -> tuple[str, int] | None:
    """(`body:path`, value) of the body field telling the number of records (of pages)."""
    names = TOTAL_PAGE_NAMES if pages else TOTAL_NAMES
    found: list[tuple[int, int, str, int]] = []
    for path, value in _walk(body):
        if isinstance(value, dict) and "value" in value and not pages:  # {"total": {"value": 9}}
            path, value = f"{path}.value", value["value"]
            name = _norm(_last(path[: -len(".value")]))
        else:
            name = _norm(_last(path))
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            continue
        if not pages and value < len(records.records):
            continue
        if name in names:
            rank = names.index(name)
        elif not pages and "total" in name and "page" not in name:
            rank = len(names)
        else:
            continue
        found.append((path.count("."), rank, path, value))
    if not found:
        return None
    _, _, path, value = min(found)
    return f"body:{path}", value


def header_total(headers: Mapping[str, str]) -> tuple[str, int] | None:
    """(`header:Name` or `header:Name.path`, value) of a header telling the number of records."""
    for name in TOTAL_HEADERS:
        value = headers.get(name, "").strip()
        if value.isascii() and value.isdigit():
            return f"header:{name}", int(value)
    for name, parsed in json_headers(headers):  # a JSON-valued header (X-Pagination: {...})
        found = body_total(parsed, Records("\0", []))
        if found is not None:
            return f"header:{name}.{found[0].removeprefix('body:')}", found[1]
    return None


def content_range_total(headers: Mapping[str, str]) -> int | None:
    """The total of `Content-Range: items 0-24/2345`; None without one (or with `*`)."""
    match = re.fullmatch(r"\s*\w+\s+(?:\d+-\d+|\*)/(\d+)\s*", headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def body_next_url(body: Any) -> tuple[str, str] | None:
    """(`body:path`, URL) of a next-page URL in the body (next, next_url, links.next, ...)."""
    found: list[tuple[int, str, str]] = []
    for path, value in _walk(body):
        names = [_norm(part) for part in path.split(".")]
        if isinstance(value, dict) and "href" in value:  # HAL: _links.next.href
            path, value = f"{path}.href", value["href"]
        if not isinstance(value, str) or not _looks_like_url(value):
            continue
        if any(name.startswith("next") or name.endswith("next") for name in names):
            found.append((path.count("."), path, value))
    if not found:
        return None
    _, path, url = min(found)
    return f"body:{path}", url


def _looks_like_url(text: str) -> bool:
    if text.startswith(("http://", "https://")):
        return True
    return text.startswith(("/", "?")) and " " not in text


def header_next_url(headers: Mapping[str, str]) -> str | None:
    """The target of a `Link: <...>; rel="next"` header."""
    value = headers.get("Link")
    return next_link(value) if value else None


def body_cursor(body: Any) -> tuple[str, str] | None:
    """(`body:path`, value) of a next cursor in the body that is not a URL."""
    found: list[tuple[int, int, str, str]] = []
    for path, value in _walk(body):
        name = _norm(_last(path))
        if name not in CURSOR_NAMES or isinstance(value, bool):
            continue
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or not value or _looks_like_url(value):
            continue
        found.append((CURSOR_NAMES.index(name), path.count("."), path, value))
    if not found:
        return None
    _, _, path, value = min(found)
    return f"body:{path}", value


def header_cursor(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(`header:Name`, value) of a next cursor sent in a header."""
    for name in CURSOR_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            return f"header:{name}", value
    return None


def echoed(bodies: list[Any], names: tuple[str, ...]) -> list[str]:
    """Which of `names` the bodies echo as numbers (LimitOffsetPage's `limit`, `offset`)."""
    found = []
    for body in bodies:
        for path, value in _walk(body):
            if _last(path) in names and isinstance(value, int) and not isinstance(value, bool):
                found.append(_last(path))
    return sorted(set(found), key=names.index)


def json_headers(headers: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(name, value) of the headers whose value is a JSON object (X-Pagination: {"total": 9})."""
    out = []
    for name, value in headers.items():
        if value.lstrip().startswith("{"):
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                out.append((name, parsed))
    return out


def query_of(url: str) -> dict[str, str]:
    """The query parameters of `url`, the last one of each name."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def increasing_integer(records: list[Any]) -> str | None:
    """A field holding integers that grow from record to record (an id to split windows on)."""
    if len(records) < 2 or not _objects(records):
        return None
    for name in records[0]:
        values = [r.get(name) for r in records]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values) and all(
            a < b for a, b in zip(values, values[1:], strict=False)
        ):
            return str(name)
    return None


def change_stamp(records: list[Any]) -> str | None:
    """A field that looks like the time of a record's last change (updated_at)."""
    if not _objects(records):
        return None
    stamps = [
        name
        for name, value in records[0].items()
        if isinstance(value, str)
        and _TIMESTAMP.match(value)
        and all(isinstance(r.get(name), str) for r in records)
    ]
    named = [n for n in stamps if _norm(n) in UPDATED_NAMES]
    return named[0] if named else None
