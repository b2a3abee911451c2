"""The largest page the API honours: ask for more than its default and see what comes back."""

from __future__ import annotations

import re
from dataclasses import dataclass

from yarl import URL

from harvester.init.paging import First, Paging
from harvester.init.probe import Answer, Prober
from harvester.init.shape import find_records

ASKED = 1000  # a page this big is cheap to hold and few APIs allow more
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
    """The page size to write: the most the API sent when asked for ASKED records."""
    default = len(first.found.records)
    if paging.fixed_size is not None:
        return PageSize(
            paging.fixed_size, "the API's own page size: it takes no page-size parameter"
        )
    params = [paging.size_param] if paging.size_param else list(_guesses(paging))
    for param in params:
        if prober.left <= FOR_VERIFYING:
            break
        asked, headers = _asking(paging, url, param, ASKED)
        answer = await prober.get(asked, headers=headers, why="how large may pages be?")
        count = _count(answer, first)
        if count is None and 400 <= answer.status < 500:
            smaller = _largest_allowed(answer, default)
            if smaller is None or prober.left <= FOR_VERIFYING:
                return PageSize(default, f"the API refused {param}={ASKED} ({answer.status})")
            asked, headers = _asking(paging, url, param, smaller)
            answer = await prober.get(asked, headers=headers, why="and this many?")
            if _count(answer, first) == smaller:
                note = f"the API refused {ASKED} ({answer.status}) and said {smaller} at most"
                return PageSize(smaller, note, param, answer)
            return PageSize(default, f"the API refused {param}={ASKED} ({answer.status})")
        if count is None:
            continue
        if count >= ASKED:
            return PageSize(ASKED, f"asked for {ASKED}, got {count}", param, answer)
        if count > default or (count == default and paging.size_param is not None):
            note = f"asked for {ASKED}, got {count}: the API's largest page, or all there is"
            return PageSize(count, note, param, answer)
    return PageSize(default, "the first answer's size: no page-size parameter was found")


def _guesses(paging: Paging) -> tuple[str, ...]:
    """Page-size parameters to try for a link or cursor: the most used, two at most."""
    return ("limit", "page_size") if paging.style in ("link", "cursor") else ()


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


def _count(answer: Answer, first: First) -> int | None:
    if not answer.ok:
        return None
    found = find_records(answer.body)
    if found is None or found.path != first.found.path:
        return None
    return len(found.records)


def _largest_allowed(answer: Answer, default: int) -> int | None:
    """The largest number in a refusal's text between the default page and ASKED (FastAPI's
    422 says `less than or equal to 100`)."""
    text = answer.text or str(answer.body)
    numbers = [int(n) for n in re.findall(r"(?<![\d.])\d{1,4}(?![\d.])", text)]
    allowed = [n for n in numbers if default < n < ASKED]
    return max(allowed) if allowed else None
