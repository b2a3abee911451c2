"""How an API's pages go, proven: each candidate asks for one page past the first answer's
start and passes only if that page holds exactly the records the first answer had there (or,
for a next link or cursor, records the first answer did not have).

The first answer's own hints are tried first (a next link's parameters, echoed `offset` and
`limit`, a cursor, Content-Range), then the parameters APIs use most, while requests are left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from yarl import URL

from harvester.init.probe import Answer, Prober
from harvester.init.shape import (
    LIMIT_NAMES,
    OFFSET_NAMES,
    PAGE_NAMES,
    Records,
    body_cursor,
    body_next_url,
    echoed,
    find_records,
    header_cursor,
    header_next_url,
    identity,
    json_headers,
    query_of,
)

# Parameters tried when the first answer gives no hint, most used first.
OFFSET_PAIRS = (
    ("offset", "limit"), ("_start", "_limit"), ("skip", "limit"), ("start", "limit"),
    ("offset", "size"), ("from", "size"), ("skip", "take"),
)  # fmt: skip
PAGE_PAIRS = (
    ("page", "page_size"), ("page", "per_page"), ("page", "size"), ("page", "limit"),
    ("_page", "_per_page"), ("_page", "_limit"), ("page", "pageSize"), ("pageNumber", "pageSize"),
)  # fmt: skip
# Page-size parameters tried where the API ignored the one asked with (three at most).
SIZE_NAMES = ("limit", "page_size", "per_page", "size", "pageSize", "_limit", "_per_page")
_SIZE_TRIES = 3
CURSOR_PARAMS = ("cursor", "after", "page_token", "pageToken", "next", "starting_after", "token")
# Requests kept back for the page-size probe and the two-page harvest that verifies the config.
RESERVED = 5
_PROBE_SIZE = 7  # records per page while proving: small, and unlike any default (10, 20, 25)


@dataclass(frozen=True)
class First:
    """The first answer, and what it says."""

    answer: Answer
    found: Records
    key: str | None

    @property
    def ids(self) -> list[Any]:
        return [identity(r, self.key) for r in self.found.records]


@dataclass
class Paging:
    """How the pages go: the config's pagination keys, and what proved them."""

    style: str
    keys: dict[str, Any]
    proof: str
    size_param: str | None = None  # the parameter of the page size, if proven to be honoured
    size_hints: list[str] = field(default_factory=list)  # names a next link or answer suggests
    fixed_size: int | None = None  # the API's own page size, where it takes no parameter
    strip: set[str] = field(default_factory=set)  # paging parameters to drop from source.url
    answer: Answer | None = None  # the answer that proved it
    records_path: str | None = None  # where pages hold the records, if not where the first did
    beyond: bool = False  # the proof saw records past the first answer's: the total is more


class Detector:
    """Tries the candidates in turn, within the prober's budget."""

    def __init__(self, prober: Prober, first: First, url: URL) -> None:
        self._prober = prober
        self._first = first
        self._url = url
        count = len(first.found.records)
        self.k = max(1, min(count // 3, _PROBE_SIZE))
        self.tried: list[str] = []

    async def paging(self) -> Paging | None:
        """The first candidate that proves itself, or None."""
        for name, attempt in self._candidates():
            if self._prober.left <= RESERVED:
                break
            self.tried.append(name)
            found = await attempt()
            if found is not None:
                found.strip |= set(query_of(str(self._url))) & self._paging_names(found)
                paged = None if found.answer is None else find_records(found.answer.body)
                if paged is not None and paged.path != self._first.found.path:
                    found.records_path = paged.path  # json-server 1: pages are shaped anew
                return found
        return None

    def _paging_names(self, paging: Paging) -> set[str]:
        names = {paging.keys.get(k) for k in ("offset_param", "page_param", "cursor_param")}
        return {str(n) for n in names | {paging.size_param} if n}

    def _candidates(self) -> list[tuple[str, Callable[[], Awaitable[Paging | None]]]]:
        answer = self._first.answer
        body, headers = answer.body, answer.headers
        link = header_next_url(headers)
        in_body = body_next_url(body)
        next_query = query_of(link or (in_body[1] if in_body else ""))
        told = [
            body,
            *(value for _, value in json_headers(headers)),
        ]  # flask-smorest: X-Pagination: {"page": 1, ...}
        offsets = [n for n in OFFSET_NAMES if n in next_query] + echoed(told, OFFSET_NAMES)
        pages = [n for n in PAGE_NAMES if n in next_query] + echoed(told, PAGE_NAMES)
        limits = [n for n in LIMIT_NAMES if n in next_query] + echoed(told, LIMIT_NAMES)
        out: list[tuple[str, Callable[[], Awaitable[Paging | None]]]] = []

        def add(name: str, attempt: Callable[[], Awaitable[Paging | None]]) -> None:
            if name not in [n for n, _ in out]:
                out.append((name, attempt))

        for offset in offsets:
            for limit in limits or ["limit"]:
                add(f"{offset}/{limit}", partial(self._offset, offset, limit))
        for page in pages:
            for size in [n for n in limits if n not in offsets] or ["page_size", "size"]:
                add(f"{page}/{size}", partial(self._page, page, size))
        if "Content-Range" in headers or headers.get("Accept-Ranges", "none") != "none":
            add("range", self._range)
        if link is not None:
            add("link header", partial(self._link, link, "link-header", limits))
        if in_body is not None:
            add(f"next link ({in_body[0]})", partial(self._link, in_body[1], in_body[0], limits))
        cursor = body_cursor(body) or header_cursor(headers)
        if cursor is not None:
            for param in _cursor_params(cursor, next_query):
                add(f"cursor {param}", partial(self._cursor, param, cursor, limits))
        if any(name.startswith(("link", "next link", "cursor")) for name, _ in out):
            return out  # the API pages by links or cursors: no guessing at parameters
        offset_pairs, page_pairs = list(OFFSET_PAIRS), list(PAGE_PAIRS)
        if not self._first.found.path:  # a bare list: json-server's _start and _page first
            offset_pairs.sort(key=lambda pair: not pair[0].startswith("_"))
            page_pairs.sort(key=lambda pair: not pair[0].startswith("_"))
            for page, size in page_pairs[:2]:
                add(f"{page}/{size}", partial(self._page, page, size))
        for offset, limit in offset_pairs:
            add(f"{offset}/{limit}", partial(self._offset, offset, limit))
        for page, size in page_pairs:
            add(f"{page}/{size}", partial(self._page, page, size))
        add("range", self._range)
        return out

    # --- one candidate each ---------------------------------------------------------------------

    async def _offset(self, offset: str, limit: str) -> Paging | None:
        k, ids = self.k, self._first.ids
        answer, got = await self._ask(
            self._with({offset: k, limit: k}), f"is it {offset} and {limit}?"
        )
        if got is None:
            return None
        keys = {"style": "offset", "offset_param": offset, "limit_param": limit}
        if got == ids[k : 2 * k]:
            proof = (
                f"?{offset}={k}&{limit}={k} answered records {k + 1}-{2 * k} of the first answer"
            )
            return Paging("offset", keys, proof, size_param=limit, answer=answer)
        if len(got) > k and got[: len(ids) - k] == ids[k:]:  # the API ignores the limit
            honoured = await self._size_param({offset: k}, limit)
            if honoured is not None:
                keys["limit_param"] = honoured
                proof = f"?{offset}={k}&{honoured}={k} answered records {k + 1}-{2 * k}"
                return Paging("offset", keys, proof, size_param=honoured, answer=answer)
            proof = (
                f"?{offset}={k} answered the first answer's records from {k + 1} on; {limit} "
                f"is ignored: the API's pages hold {len(ids)}"
            )
            return Paging("offset", keys, proof, fixed_size=len(ids), answer=answer, beyond=True)
        return None

    async def _size_param(self, position: Mapping[str, Any], ignored: str) -> str | None:
        """Where the API ignores `ignored`, the page-size parameter it honours, if one of the
        usual ones (a few requests at most): `position` must then answer records k+1 to 2k."""
        k, ids = self.k, self._first.ids
        for name in [n for n in SIZE_NAMES if n != ignored][:_SIZE_TRIES]:
            if self._prober.left <= RESERVED:
                break
            _, got = await self._ask(
                self._with({**position, name: k}), f"is the size {name}?", anywhere=True
            )
            if got == ids[k : 2 * k]:
                return name
        return None

    async def _page(self, page: str, size: str) -> Paging | None:
        k, ids = self.k, self._first.ids
        answer, got = await self._ask(
            self._with({page: 2, size: k}), f"is it {page} and {size}?", anywhere=True
        )
        if not got:
            return None
        keys: dict[str, Any] = {"style": "page", "page_param": page, "page_size_param": size}
        asked = f"?{page}=2&{size}={k}"
        if got == ids[k : 2 * k]:
            proof = f"{asked} answered records {k + 1}-{2 * k} of the first answer"
            return Paging("page", keys, proof, size_param=size, answer=answer)
        if 3 * k <= len(ids) and got == ids[2 * k : 3 * k]:
            keys["first_page"] = 0
            proof = f"{asked} answered records {2 * k + 1}-{3 * k}: pages count from 0"
            return Paging("page", keys, proof, size_param=size, answer=answer)
        if len(got) == len(ids) and not set(got) & set(ids):  # the API's own page size
            _, first = await self._ask(
                self._with({page: 1}), f"does {page} count from 1?", anywhere=True
            )
            if first == ids:
                proof = f"{page}=1 is the first answer and {page}=2 follows it; {size} is ignored"
            elif first and not set(first) & set(ids):
                keys["first_page"] = 0
                proof = f"{page}=1 and {page}=2 both follow the first answer: pages count from 0"
            else:
                return None
            second = keys.get("first_page", 1) + 1
            honoured = await self._size_param({page: second}, size)
            if honoured is not None:
                keys["page_size_param"] = honoured
                proof += f"; ?{page}={second}&{honoured}={k} answered records {k + 1}-{2 * k}"
                return Paging("page", keys, proof, size_param=honoured, answer=answer)
            return Paging("page", keys, proof, fixed_size=len(ids), answer=answer, beyond=True)
        return None

    async def _range(self) -> Paging | None:
        k, ids = self.k, self._first.ids
        unit = self._first.answer.headers.get("Accept-Ranges", "items").strip() or "items"
        unit = "items" if unit in ("none", "bytes") else unit
        ask = {"Range": f"{unit}={k}-{2 * k - 1}"}
        answer = await self._prober.get(self._url, headers=ask, why="a Range header?")
        if answer.status != 206 or self._ids_of(answer, anywhere=True) != ids[k : 2 * k]:
            return None
        keys = {"style": "range", "range_unit": unit}
        proof = f"Range: {ask['Range']} answered 206 with records {k + 1}-{2 * k}"
        return Paging("range", keys, proof, size_param="Range", answer=answer)

    async def _link(self, target: str, where: str, limits: list[str]) -> Paging | None:
        url = self._first.answer.url.join(URL(target))
        if url.origin() != self._url.origin():  # the token goes to the API's own origin only
            self.tried.append(f"(a next link to {url.origin()} was not followed)")
            return None
        answer, got = await self._ask(url, "does the next link continue?")
        if not got or set(got) & set(self._first.ids):
            return None
        keys: dict[str, Any] = {"style": "link", "next_url": where}
        proof = f"the next link ({where}) answered {len(got)} records the first answer had not"
        return Paging("link", keys, proof, size_hints=limits, answer=answer, beyond=True)

    async def _cursor(
        self, param: str, cursor: tuple[str, str], limits: list[str]
    ) -> Paging | None:
        where, value = cursor
        answer, got = await self._ask(self._with({param: value}), f"is the cursor sent as {param}?")
        if not got or set(got) & set(self._first.ids):
            return None
        keys = {"style": "cursor", "cursor_param": param, "next_cursor": where}
        proof = f"?{param}=<the cursor in {where}> answered {len(got)} new records"
        return Paging("cursor", keys, proof, size_hints=limits, answer=answer, beyond=True)

    # --- helpers ----------------------------------------------------------------------------------

    def _with(self, params: Mapping[str, Any]) -> URL:
        return self._url.update_query({k: str(v) for k, v in params.items()})

    async def _ask(
        self, url: URL, why: str, *, anywhere: bool = False
    ) -> tuple[Answer, list[Any] | None]:
        """The answer to `url`, and the identities of its records (see _ids_of)."""
        answer = await self._prober.get(url, why=why)
        return answer, self._ids_of(answer, anywhere=anywhere)

    def _ids_of(self, answer: Answer, *, anywhere: bool = False) -> list[Any] | None:
        """The identities of an answer's records at the first answer's path (`anywhere`: at
        whatever path it holds them); None if none."""
        if not answer.ok:
            return None
        found = find_records(answer.body)
        if found is None or (found.path != self._first.found.path and not anywhere):
            return None
        return [identity(r, self._first.key) for r in found.records]


def _cursor_params(cursor: tuple[str, str], next_query: Mapping[str, str]) -> list[str]:
    """The query parameters a cursor may go back in: the one a next link carries it in, the one
    its name suggests (next_cursor: cursor, nextPageToken: pageToken), then the usual ones."""
    where, value = cursor
    named = [name for name, text in next_query.items() if text == value]
    field_name = where.split(":", 1)[1].rsplit(".", 1)[-1]
    stem = field_name
    for prefix in ("next_", "next-", "next", "x-next-", "X-Next-"):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            stem = stem[len(prefix) :]
            stem = stem[0].lower() + stem[1:]
            break
    stem = stem.lower() if where.startswith("header:") else stem
    suggested = [stem, field_name] if where.startswith("body:") else [stem]
    out: list[str] = []
    for name in [*named, *suggested, *CURSOR_PARAMS]:
        if name and name not in out:
            out.append(name)
    return out[:4]
