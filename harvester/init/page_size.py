"""The largest page the API honours: ask for more than its default and see what comes back."""

from __future__ import annotations

import re
from dataclasses import dataclass

from yarl import URL

from harvester.init.paging import First, Paging
from harvester.init.probe import Answer, Prober
from harvester.init.shape import (
    Records,
    body_total,
    content_range_total,
    find_records,
    header_total,
)

ASKED = 1000  # a page this big is cheap to hold and few APIs allow more
GUESSED = ("limit", "page_size", "size", "per_page", "_size", "pageSize")
# Requests kept for the two-page harvest that verifies the config (a token and two pages, and
# one more should the first page come back short).
FOR_VERIFYING = 4


@dataclass(frozen=True)
class PageSize:
    size: int
    note: str  # what was seen, for the config's comment
    param: str | None = None  # the page-size parameter, if it was found only now
    answer: Answer | None = None  # the answer to the big page


async def largest_page(prober: Prober, first: First, paging: Paging, url: URL) -> PageSize:
    """The page size to write: the most the API sent when asked for ASKED records.

    For a link or cursor whose page-size parameter is unknown, the usual names are tried: one
    the API honours wins; else one it accepts and ignores (harvester sends one on the first
    page, so it must be one the API does not refuse)."""
    default = len(first.found.records)
    if paging.fixed_size is not None:
        note = "the API's own page size: it takes no page-size parameter"
        return PageSize(paging.fixed_size, note)
    guessing = paging.size_param is None
    params = [paging.size_param] if paging.size_param else _guesses(paging)
    tolerated: str | None = None
    refusals: list[str] = []
    for param in params:
        if prober.left <= FOR_VERIFYING:
            break
        found = await _asked_for_more(prober, first, paging, url, param)
        if isinstance(found, str):
            refusals.append(found)
            continue
        size, answer, note = found
        if size >= ASKED or size > default or (not guessing and size > 0):
            return PageSize(size, note, param, answer)
        if size == default:  # accepted, and ignored
            tolerated = tolerated or param
    if tolerated is not None:
        note = f"{tolerated}={ASKED} changed nothing: the API's own page size"
        return PageSize(default, note, tolerated)
    why = "; ".join(refusals) or "no page-size parameter was found"
    return PageSize(default, f"the first answer's size ({why})")


async def _asked_for_more(
    prober: Prober, first: First, paging: Paging, url: URL, param: str
) -> tuple[int, Answer, str] | str:
    """(records, answer, what was seen) for the first page asked for in pages of ASKED, or of
    the most a refusal names; else why not."""
    asked, headers = _asking(paging, url, param, ASKED)
    answer = await prober.get(asked, headers=headers, why="how large may pages be?")
    count = _count(answer, first, paging)
    if count is not None:
        if count < ASKED and count == _total_told(answer):  # all there is: no cap seen
            return ASKED, answer, f"asked for {ASKED}, got all {count} there are"
        most = "" if count >= ASKED else ": the most the API sends"
        return min(count, ASKED), answer, f"asked for {ASKED}, got {count}{most}"
    refusal = f"{param}={ASKED} was answered {answer.status}"
    smaller = _largest_allowed(answer, len(first.found.records))
    if not 400 <= answer.status < 500 or smaller is None or prober.left <= FOR_VERIFYING:
        return refusal
    asked, headers = _asking(paging, url, param, smaller)
    again = await prober.get(asked, headers=headers, why="and this many?")
    if _count(again, first, paging) != smaller:
        return refusal
    return smaller, again, f"the API refused {ASKED} ({answer.status}) and said {smaller} at most"


def _guesses(paging: Paging) -> list[str]:
    """Page-size parameters to try for a link or cursor: those its answer hinted at, then the
    most used."""
    if paging.style not in ("link", "cursor"):
        return []
    names = [*paging.size_hints, *GUESSED]
    return list(dict.fromkeys(names))


def _asking(paging: Paging, url: URL, param: str, size: int) -> tuple[URL, dict[str, str]]:
    """The first page, asked for in pages of `size`."""
    keys = paging.keys
    if paging.style == "range":
        return url, {"Range": f"{keys['range_unit']}=0-{size - 1}"}
    query: dict[str, str] = {param: str(size)}
    if paging.style == "offset":
        query[keys["offset_param"]] = "0"
    elif paging.style == "page":
        query[keys["page_param"]] = str(keys.get("first_page", 1))
    return url.update_query(query), {}


def _count(answer: Answer, first: First, paging: Paging) -> int | None:
    if not answer.ok:
        return None
    found = find_records(answer.body)
    path = first.found.path if paging.records_path is None else paging.records_path
    if found is None or found.path != path:
        return None
    return len(found.records)


def _total_told(answer: Answer) -> int | None:
    """The total an answer tells, wherever it tells it."""
    found = find_records(answer.body) or Records("", [])
    told = body_total(answer.body, found) or header_total(answer.headers)
    return told[1] if told else content_range_total(answer.headers)


def _largest_allowed(answer: Answer, default: int) -> int | None:
    """The largest number in a refusal's text between the default page and ASKED (FastAPI's
    422 says `less than or equal to 100`)."""
    text = answer.text or str(answer.body)
    numbers = [int(n) for n in re.findall(r"(?<![\d.])\d{1,4}(?!\d|\.\d)", text)]
    allowed = [n for n in numbers if default < n < ASKED and n != answer.status]
    return max(allowed) if allowed else None
