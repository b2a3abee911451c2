"""From what init found to the config it writes: only the keys that differ from the defaults,
each with what was observed; the defaults that fit as comments; suggestions commented out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from harvester.init.page_size import PageSize
from harvester.init.paging import First, Paging
from harvester.init.render import Commented, Document, Section
from harvester.init.shape import (
    Records,
    body_total,
    change_stamp,
    content_range_total,
    find_records,
    header_total,
    increasing_integer,
)

# The config's defaults (harvester/config/schema.py), where init compares against them.
_DEFAULTS: dict[str, Any] = {
    "offset_param": "offset",
    "limit_param": "limit",
    "page_param": "page",
    "page_size_param": "page_size",
    "first_page": 1,
    "cursor_param": "cursor",
    "range_unit": "items",
    "next_url": "link-header",
    "page_size": 100,
}
_DEFAULT_TOTAL = {"offset": "body:total", "page": "body:total", "range": "content-range"}
FILL_IN = "FILL_IN"


@dataclass(frozen=True)
class Auth:
    """The client credentials (or a bearer token) as the config will hold them: every secret
    as ${VAR}."""

    token_url: str = ""
    client_id: str = ""
    secret_variable: str = ""
    scope: str | None = None
    issuer: str | None = None  # the token URL came from this issuer's discovery document
    bearer: str | None = None  # type: bearer, with this token as written (${API_TOKEN})


@dataclass(frozen=True)
class Total:
    spec: str  # the config's notation: body:count, header:X-Total-Count, content-range
    value: int
    seen: str  # what was observed, for the comment


@dataclass
class Findings:
    url: str  # source.url as written
    headers: dict[str, str]  # as written (${VAR}s kept)
    auth: Auth | None
    first: First
    paging: Paging
    size: PageSize
    total: Total | None
    output: str
    rate_headers: dict[str, str] = field(default_factory=dict)
    requests: int = 0


def decide_total(first: First, paging: Paging, size: PageSize) -> Total | None:
    """Where the total is, checked against the big page's answer: a count that changes with
    the page size counts the page, not the dataset."""
    answer = first.answer
    found: list[tuple[str, int, str]] = []
    if paging.style == "range":
        for ranged in (paging.answer, size.answer):
            value = None if ranged is None else content_range_total(ranged.headers)
            if ranged is not None and value is not None:
                header = ranged.headers["Content-Range"]
                return Total("content-range", value, f"an answer said Content-Range: {header}")
        return None
    # The first answer, then the one that proved the paging (json-server 0.17 tells the total
    # only when asked for a page).
    for which, told in (("the first answer", answer), ("the answer to a page", paging.answer)):
        if told is None or not told.ok:
            continue
        in_body = body_total(told.body, find_records(told.body) or Records("", []))
        if in_body is not None:
            found.append((*in_body, f"{which} said {in_body[0][5:]}: {in_body[1]}"))
        in_header = header_total(told.headers)
        if in_header is not None:
            name = in_header[0][7:].split(".")[0]
            found.append((*in_header, f"{which}'s {name} header said {in_header[1]}"))
    for spec, value, seen in found:
        if _holds_up(spec, value, first, paging, size):
            return Total(spec, value, seen)
    return None


def _holds_up(spec: str, value: int, first: First, paging: Paging, size: PageSize) -> bool:
    count = len(first.found.records)
    if value < count or (paging.beyond and value <= count):
        return False  # a page past the first answer's records was seen: there are more
    big = size.answer
    if big is None or not big.ok:
        return True
    found = find_records(big.body) or Records("", [])
    again = body_total(big.body, found) if spec.startswith("body:") else header_total(big.headers)
    if again is None or again[0] != spec:
        return spec.startswith("header:")  # the same header may be left out of one answer
    return again[1] == value and len(found.records) <= value


def document(findings: Findings, *, now: datetime | None = None) -> Document:
    """The config to write, as sections of keys and comments."""
    f = findings
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        f"Written by `harvester init` on {stamp}; every key below says what it was told by.",
        "Keys left out have their defaults (README: Configuration); `harvester CONFIG",
        "--print-config` shows them all. Verified: two pages harvested with this config held the",
        "records the API's first answer began with.",
    ]
    sections = [_source(f), *([_auth(f.auth)] if f.auth else []), _pagination(f)]
    concurrency = _concurrency(f.rate_headers)
    if concurrency.lines:
        sections.append(concurrency)
    output = Section("output")
    output.key("path", f.output, "relative to this file")
    sections.append(output)
    doc = Document(header, sections)
    incremental = _incremental(f.first)
    if incremental is not None:
        doc.suggestions.append(incremental)
    return doc


def _source(f: Findings) -> Section:
    source = Section("source")
    source.key("url", f.url)
    count = len(f.first.found.records)
    key = f"; each record's key looks to be {f.first.key}" if f.first.key else ""
    path = f.first.found.path if f.paging.records_path is None else f.paging.records_path
    if f.paging.records_path is not None:
        source.key("records", path, f"where pages hold the list of records{key}")
    elif path:
        source.key("records", path, f"the list of records ({count} in the first answer){key}")
    else:
        source.note(
            f"records: the body itself is the list of records ({count} in the first answer){key}"
        )
    if f.headers:
        source.key("headers", f.headers, "as given to init")
    return source


def _auth(auth: Auth) -> Section:
    section = Section("auth")
    if auth.bearer is not None:
        section.key("type", "bearer", "given to init as --header 'Authorization: Bearer ...'")
        section.key("token", auth.bearer, "never logged; export the variable before a run")
        return section
    section.note("type: client_credentials (the default): init got a token this way")
    if auth.issuer:  # each run reads the token endpoint from the issuer's document
        section.key("issuer", auth.issuer, f"its discovery document names {auth.token_url}")
    else:
        section.key("token_url", auth.token_url)
    section.key("client_id", auth.client_id)
    section.key(
        "client_secret",
        f"${{{auth.secret_variable}}}",
        f"export {auth.secret_variable} before a run",
    )
    if auth.scope:
        section.key("scope", auth.scope)
    return section


def _pagination(f: Findings) -> Section:
    section = Section("pagination")
    paging = f.paging
    style = paging.keys["style"]
    if style == "offset":
        section.note(f"style: offset (the default): {paging.proof}")
    else:
        section.key("style", style, paging.proof)
    for name, value in paging.keys.items():
        if name != "style" and value != _DEFAULTS.get(name):
            section.key(name, value)
    if (
        f.size.param
        and f.size.param != paging.keys.get("limit_param", "limit")
        and style
        in (
            "link",
            "cursor",
        )
    ):
        section.key("limit_param", f.size.param, "the page size's parameter")
    if f.size.size != _DEFAULTS["page_size"]:
        section.key("page_size", f.size.size, f.size.note)
    else:
        section.note(f"page_size: 100 (the default): {f.size.note}")
    _total(section, style, f.total)
    if style in ("link", "cursor"):
        partition = _partition(f.first)
        if partition is not None:
            section.lines.append(partition)
    return section


def _total(section: Section, style: str, total: Total | None) -> None:
    default = _DEFAULT_TOTAL.get(style, "unknown")
    if total is None:
        if default != "unknown":
            section.key(
                "total", "unknown", "no total in the first answer: the end is the first short page"
            )
        else:
            section.note("total: unknown (the default): no total in the first answer")
    elif total.spec == default:
        section.note(f"total: {default} (the default): {total.seen}")
    else:
        section.key("total", total.spec, total.seen)


def _partition(first: First) -> Commented | None:
    key = increasing_integer(first.found.records)
    if key is None:
        return None
    values = [r[key] for r in first.found.records]
    return Commented(
        f"Pages come one after another. If the API filters {key} by a range, these windows run in "
        f"parallel (fill in its filter parameters):",
        "partition",
        {
            "param_from": FILL_IN,
            "param_to": FILL_IN,
            "start": values[0],
            "end": FILL_IN,
            "parts": 8,
            "key": key,
        },
        {
            "param_from": f"the parameter of {key} >= a value",
            "param_to": f"the parameter of {key} < a value",
            "start": f"the first answer's first {key}",
            "end": f"one past the largest {key}",
        },
    )


def _incremental(first: First) -> Commented | None:
    stamp = change_stamp(first.found.records)
    if stamp is None:
        return None
    values = sorted(str(r[stamp]) for r in first.found.records)
    values_note = {"param": f"the query parameter that filters {stamp} >= a value"}
    data: dict[str, Any] = {"field": stamp, "param": FILL_IN, "initial": values[0]}
    if first.key:
        data["primary_key"] = first.key
    return Commented(
        f"Records carry {stamp}: if the API filters by it, later runs can fetch only what changed:",
        "incremental",
        data,
        {**values_note, "initial": f"the earliest {stamp} in the first answer"},
    )


def _concurrency(rate_headers: dict[str, str]) -> Section:
    section = Section("concurrency")
    if rate_headers:
        shown = ", ".join(f"{k}: {v}" for k, v in list(rate_headers.items())[:3])
        section.note(f"the API sends {shown}; harvester paces itself by them, no rate_limit needed")
    return section


def output_name(url: str) -> str:
    """A file name for the dataset, from the URL's last path segment (`items.jsonl`)."""
    last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", last).strip("-")
    return f"{name or 'data'}.jsonl"
