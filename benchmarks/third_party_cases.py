"""The third-party API servers third_party.py harvests, the dataset they serve, and the cases.

Each Server says how to start it (from benchmarks/.third_party/, installed by `make third-party`),
how to seed it, and how a plain sequential client reads everything it serves (the reference).
Each Style is one way a new user would paginate one of its endpoints; cases_of() crosses it with
the settings a new user would try: workers, max_buffered_pages, page_size below and above the
server's cap, the total known and unknown.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
APPS = HERE / "third_party_servers"
STATE = HERE / ".third_party"
SERVER_PY = STATE / "venv" / "bin" / "python"
NODE_MODULES = STATE / "node" / "node_modules"

DEFAULT_RECORDS = 2345  # not a multiple of any page size: the last page is short
CONCURRENCY = ((1, None), (16, 1), (16, None))  # (workers, max_buffered_pages); None: default
CHAINED = ((16, None), (1, None))  # cursor and link: the reorder window plays no part
UNKNOWN_KEY = "pagination.{}: unknown key"  # a config key this harvester does not know yet


# --- the seeded dataset ------------------------------------------------------------------------

TEXTS = (
    "plain ascii",
    "Grüße, Zoë, naïve café",
    "日本語のテキスト",
    "emoji 🎉👍🏽 and 𝄞",
    'quote " backslash \\ tab \t newline \n',
    "line separator \u2028 paragraph separator \u2029",
    "",
    "control \u0001\u001f characters",
)
TRICKY_BIG = {7: 2**64 + 1, 8: -(2**63) - 1, 9: 2**53 + 1}  # > 2**64, < int64, > a double's
TRICKY_RATIO = {10: 0.1 + 0.2, 11: 1e-7, 12: 1.7976931348623157e308, 13: 5e-324}
TRICKY_DEC = {15: Decimal("1.00000000000000000001"), 16: Decimal("123456789.0123456789012345")}


def seeded_records(n: int) -> list[dict[str, Any]]:
    """The dataset every server is seeded with; `dec` is a Decimal (a raw JSON number in files)."""
    return [
        {
            "id": i + 1,
            "seq": i,
            "name": f"item {i:05d}",
            "text": TEXTS[i % len(TEXTS)],
            "big": TRICKY_BIG.get(i, i * 1_000_003),
            "ratio": TRICKY_RATIO.get(i, i / 7),
            "dec": TRICKY_DEC.get(i, Decimal(i) / 8),
        }
        for i in range(n)
    ]


def dumps_exact(value: Any) -> str:
    """JSON with every Decimal as a number of all its digits (json.dumps cannot)."""
    marked = json.dumps(value, ensure_ascii=False, default=lambda d: f"\x00{d}\x00")
    return re.sub(r'"\\u0000([^"\\]*)\\u0000"', r"\1", marked)


def loads_exact(text: str | bytes) -> Any:
    """JSON with integers of any size and every digit of a decimal kept."""
    return json.loads(text, parse_float=Decimal)


def write_sqlite(path: Path, records: list[dict[str, Any]]) -> None:
    """The dataset as a sqlite table `items`; what sqlite cannot hold as a number is TEXT."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, seq INTEGER, name TEXT, text TEXT,"
            " big, ratio REAL, dec TEXT)"
        )
        db.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r["id"],
                    r["seq"],
                    r["name"],
                    r["text"],
                    r["big"] if -(2**63) <= r["big"] < 2**63 else str(r["big"]),
                    r["ratio"],
                    str(r["dec"]),
                )
                for r in records
            ],
        )
        db.commit()


# --- a plain client: what the server serves, asked for sequentially ---------------------------


def get(url: str) -> tuple[dict[str, str], Any]:
    """One GET with urllib: the headers and the body parsed Decimal-exact."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback)
        return dict(answer.headers.items()), loads_exact(answer.read())


def everything(url: str) -> list[Any]:
    """The whole collection in one answer (json-server without paging parameters)."""
    return list(get(url)[1])


def follow(url: str, records: Callable[[Any], list[Any]], nxt: Callable[[Any], Any]) -> list[Any]:
    """Follow next URLs from `url` to the end."""
    out: list[Any] = []
    while url:
        body = get(url)[1]
        out.extend(records(body))
        url = nxt(body)
    return out


def by_offset(base: str, total_of: Callable[[Any], int]) -> list[Any]:
    """`?offset=&limit=100` until the body's total is reached."""
    out: list[Any] = []
    while True:
        body = get(f"{base}?offset={len(out)}&limit=100")[1]
        out.extend(body["items"])
        if len(out) >= total_of(body) or not body["items"]:
            return out


def smorest_pages(base: str) -> list[Any]:
    """flask-smorest: pages of 100 until X-Pagination's total_pages."""
    out: list[Any] = []
    page = 1
    while True:
        headers, body = get(f"{base}?page={page}&page_size=100")
        out.extend(body)
        if page >= json.loads(headers["X-Pagination"])["total_pages"]:
            return out
        page += 1


# --- servers and cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """One way a new user would paginate one endpoint, and the settings to try on it."""

    name: str
    path: str  # appended to the server's base URL; may carry a query string
    pagination: dict[str, Any]
    records: str = ""
    totals: dict[str, dict[str, Any]] = field(default_factory=lambda: {"unknown": {}})
    sizes: tuple[int, ...] = (50, 250)
    cap: int | None = None  # the most records the server sends per page
    over_cap: str = "cut"  # above the cap: "cut" (silently) or "refused" (4xx)
    chained: bool = False  # cursor or link: no reorder window, one chain (or window) per worker
    concurrency: tuple[tuple[int, int | None], ...] | None = None  # None: the usual ones
    expect: str = "exact"  # "exact", or "either" (a clear failure is fine too)
    # The error a harvester without a feature being added right now gives (its text, in part).
    pending: str | None = None
    note: str = ""
    # base URL -> what this endpoint serves, when it is not the server's main dataset
    reference: Callable[[str], list[Any]] | None = None
    timeout: float | None = None  # seconds per harvest, when not --timeout (one that may hang)


@dataclass(frozen=True)
class Server:
    name: str
    title: str
    argv: Callable[[Path, int], list[str]]  # (work dir, port) -> the command
    prepare: Callable[[Path, list[dict[str, Any]]], None]  # write the dataset into the work dir
    ready: str  # a path that answers 200 once the server is up
    reference: Callable[[str], list[Any]]  # base URL -> the dataset as the server serves it
    styles: tuple[Style, ...]
    installed: Path  # a file that exists once `make third-party` has installed the server


@dataclass(frozen=True)
class Case:
    server: str
    style: Style
    total: str
    page_size: int
    workers: int
    buffered: int | None

    @property
    def name(self) -> str:
        buffered = "-" if self.buffered is None else self.buffered
        return (
            f"{self.style.name}/{self.total}/ps{self.page_size}/w{self.workers}/b{buffered}"
        ).replace(" ", "")

    @property
    def over_cap(self) -> bool:
        return self.style.cap is not None and self.page_size > self.style.cap

    @property
    def may_fail(self) -> bool:
        """A clear failure is an acceptable outcome of this case."""
        refused = self.over_cap and self.style.over_cap == "refused"
        return refused or self.style.expect == "either"

    def config(self, base: str, out: Path) -> dict[str, Any]:
        pagination = {**self.style.pagination, **self.style.totals[self.total]}
        pagination["page_size"] = self.page_size
        concurrency: dict[str, Any] = {"workers": self.workers}
        if self.buffered is not None:
            concurrency["max_buffered_pages"] = self.buffered
        return {
            "source": {"url": base + self.style.path, "records": self.style.records},
            "auth": {"type": "none"},
            "pagination": pagination,
            "concurrency": concurrency,
            # Bounded: a body retried 8 times waits 0.1 + 0.2 + ... s, not a minute.
            "retry": {"initial_backoff": 0.1, "max_backoff": 2},
            "output": {"path": str(out)},
        }


def cases_of(server: Server) -> list[Case]:
    """Every setting a new user would try, per style: workers, reorder window, size, total."""
    out: list[Case] = []
    for style in server.styles:
        concurrency = style.concurrency or (CHAINED if style.chained else CONCURRENCY)
        for total in style.totals:
            for size in style.sizes:
                for workers, buffered in concurrency:
                    out.append(Case(server.name, style, total, size, workers, buffered))
    return out


def node(script: str, port_flag: str, host_flag: str) -> Callable[[Path, int], list[str]]:
    entry = str(NODE_MODULES / script)
    return lambda work, port: [
        "node",
        entry,
        str(work / "db.json"),
        *(port_flag, str(port), host_flag, "127.0.0.1"),
    ]


def python_app(app: str, *, pass_work_dir: bool = False) -> Callable[[Path, int], list[str]]:
    script = str(APPS / app)
    return lambda work, port: (
        [str(SERVER_PY), script, str(work / "data.json"), str(port)]
        + ([str(work)] if pass_work_dir else [])
    )


def write_json_dataset(work: Path, records: list[dict[str, Any]]) -> None:
    (work / "data.json").write_text(dumps_exact(records), encoding="utf-8")


def write_json_server_db(work: Path, records: list[dict[str, Any]]) -> None:
    # Thirty identical rows without ids: legitimate data whose pages of one are all the same.
    repeated = [{"kind": "repeated row", "text": "Grüße"}] * 30
    # A whole number of pages of 50 and of 1000: the last page is full.
    even = records[: len(records) // 1000 * 1000]
    db = {"items": records, "repeated": repeated, "even": even}
    (work / "db.json").write_text(dumps_exact(db), encoding="utf-8")


def write_datasette_db(work: Path, records: list[dict[str, Any]]) -> None:
    write_sqlite(work / "data.db", records)


def partitioned(
    base: dict[str, Any], bounds: tuple[str, str], start: int, end: int, **extra: Any
) -> dict[str, Any]:
    """`base` split into 8 windows over [start, end) with the filter parameters `bounds`."""
    part = {"param_from": bounds[0], "param_to": bounds[1], "start": start, "end": end, "parts": 8}
    return {**base, "partition": {**part, **extra}}


def json_server_017(n: int) -> Server:
    total = {"known": {"total": "header:X-Total-Count"}, "unknown": {"total": "unknown"}}
    link = {"style": "link", "next_url": "link-header", "limit_param": "_limit"}
    inclusive = ("seq_gte", "seq_lte")  # json-server 0.17 filters are inclusive only
    chained = {"chained": True, "sizes": (50,), "path": "/items?_page=1"}
    return Server(
        name="json-server-0.17",
        title="json-server 0.17.4 (npm): _start/_limit, _page/_limit, X-Total-Count, Link",
        argv=node("json-server-017/lib/cli/bin.js", "--port", "--host"),
        prepare=write_json_server_db,
        ready="/items?_limit=1",
        reference=lambda base: everything(f"{base}/items"),
        installed=NODE_MODULES / "json-server-017" / "package.json",
        styles=(
            Style(
                "offset",
                "/items",
                {"style": "offset", "offset_param": "_start", "limit_param": "_limit"},
                totals=total,
                sizes=(50, 1000),
            ),
            Style(
                "page",
                "/items",
                {"style": "page", "page_param": "_page", "page_size_param": "_limit"},
                totals=total,
                sizes=(50, 1000),
            ),
            Style("link", pagination=link, sizes=(50, 1000), chained=True, path="/items?_page=1"),
            Style(
                "link-8-windows-inclusive-as-half-open",
                pagination=partitioned(link, inclusive, 0, n),
                expect="either",
                note="server filters are inclusive, the config says [from, to)",
                **chained,
            ),
            Style(
                "link-8-windows-to_inclusive",
                pagination=partitioned(link, inclusive, 0, n, to_inclusive=True),
                pending=UNKNOWN_KEY.format("partition.to_inclusive"),
                **chained,
            ),
            Style(
                "link-8-windows-inclusive-key",
                pagination=partitioned(link, inclusive, 0, n, key="seq"),
                pending=UNKNOWN_KEY.format("partition.key"),
                expect="either",
                note="the key check should catch the boundary records written twice",
                **chained,
            ),
            Style(
                "repeated-rows",
                "/repeated",
                {"style": "offset", "offset_param": "_start", "limit_param": "_limit"},
                totals={"known": {"total": "header:X-Total-Count"}},
                sizes=(1,),
                expect="either",
                note="30 identical rows, pages of 1: the repeated-page check may refuse them",
                reference=lambda base: everything(f"{base}/repeated"),
            ),
            Style(
                "repeated-rows-allowed",
                "/repeated",
                {
                    "style": "offset",
                    "offset_param": "_start",
                    "limit_param": "_limit",
                    "repeated_pages": "allow",
                },
                totals={"known": {"total": "header:X-Total-Count"}},
                sizes=(1,),
                pending=UNKNOWN_KEY.format("repeated_pages"),
                reference=lambda base: everything(f"{base}/repeated"),
            ),
        ),
    )


def json_server_1(n: int) -> Server:
    page = {"style": "page", "page_param": "_page", "page_size_param": "_per_page"}
    return Server(
        name="json-server-1.0",
        title="json-server 1.0.0-beta.15 (npm): _page/_per_page, body first..last, pages, items",
        argv=node("json-server-1/lib/bin.js", "-p", "-h"),
        prepare=write_json_server_db,
        ready="/items?_page=1&_per_page=1",
        reference=lambda base: everything(f"{base}/items"),
        installed=NODE_MODULES / "json-server-1" / "package.json",
        styles=(
            Style(
                "page",
                "/items",
                page,
                records="data",
                totals={
                    "items": {"total": "body:items"},
                    "pages": {"total_pages": "body:pages"},
                    "unknown": {"total": "unknown"},
                },
                sizes=(50, 1000),
                note="a page past the last one answers the last page again",
            ),
            Style(
                "page-full-last-page",
                "/even",
                page,
                records="data",
                totals={"items": {"total": "body:items"}, "pages": {"total_pages": "body:pages"}},
                sizes=(50, 1000),
                reference=lambda base: everything(f"{base}/even"),
            ),
            Style(
                "page-full-last-page",
                "/even",
                page,
                records="data",
                totals={"unknown": {"total": "unknown"}},
                sizes=(50, 1000),
                expect="either",
                note="the full last page again past the end: the end is not provable",
                reference=lambda base: everything(f"{base}/even"),
            ),
            Style(
                "page-full-last-page-repeats-allowed",
                "/even",
                {**page, "repeated_pages": "allow"},
                records="data",
                totals={"unknown": {"total": "unknown"}},
                sizes=(50,),
                expect="either",
                pending=UNKNOWN_KEY.format("repeated_pages"),
                note="the full last page again past the end, forever: must end or fail, not hang",
                reference=lambda base: everything(f"{base}/even"),
                timeout=20,
            ),
            Style(
                "page-unknown-repeats-allowed",
                "/items",
                {**page, "repeated_pages": "allow"},
                records="data",
                totals={"unknown": {"total": "unknown"}},
                sizes=(50,),
                expect="either",
                pending=UNKNOWN_KEY.format("repeated_pages"),
                note="past the end the last page again, forever: must end or fail, not hang",
            ),
            Style(
                "cursor-next-page",
                "/items?_page=1",
                {
                    "style": "cursor",
                    "cursor_param": "_page",
                    "next_cursor": "body:next",
                    "limit_param": "_per_page",
                },
                records="data",
                totals={"unknown": {}, "items": {"total": "body:items"}},
                sizes=(50,),
                chained=True,
                expect="either",
                note="next page number as a cursor; _page=1 is in the URL as the first page",
            ),
        ),
    )


def fastapi(n: int) -> Server:
    return Server(
        name="fastapi",
        title="FastAPI 0.165 + fastapi-pagination 0.16: LimitOffsetPage, Page, links.Page",
        argv=python_app("fastapi_app.py"),
        prepare=write_json_dataset,
        ready="/page?size=1",
        reference=lambda base: by_offset(f"{base}/limit-offset", lambda b: int(b["total"])),
        installed=SERVER_PY,
        styles=(
            Style(
                "limit-offset",
                "/limit-offset",
                {"style": "offset", "offset_param": "offset", "limit_param": "limit"},
                records="items",
                totals={"known": {"total": "body:total"}, "unknown": {"total": "unknown"}},
                cap=100,
                over_cap="refused",
            ),
            Style(
                "page",
                "/page",
                {"style": "page", "page_param": "page", "page_size_param": "size"},
                records="items",
                totals={
                    "known": {"total": "body:total"},
                    "pages": {"total_pages": "body:pages"},
                    "unknown": {"total": "unknown"},
                },
                cap=100,
                over_cap="refused",
            ),
            Style(
                "page-no-total",
                "/page-no-total",
                {"style": "page", "page_param": "page", "page_size_param": "size"},
                records="items",
                totals={"unknown": {"total": "unknown"}},
                sizes=(50,),
                cap=100,
                over_cap="refused",
                note="UseIncludeTotal(False): total and pages are null",
            ),
            Style(
                "page-no-total-read-anyway",
                "/page-no-total",
                {"style": "page", "page_param": "page", "page_size_param": "size"},
                records="items",
                totals={"null": {"total": "body:total"}},
                sizes=(50,),
                concurrency=((16, None),),
                expect="either",
                note="the config reads body:total, which is null",
            ),
            Style(
                "links",
                "/links",
                {"style": "link", "next_url": "body:links.next", "limit_param": "size"},
                records="items",
                totals={"unknown": {}, "known": {"total": "body:total"}},
                cap=100,
                over_cap="refused",
                chained=True,
            ),
        ),
    )


def drf(n: int) -> Server:
    cursor = {"style": "link", "next_url": "body:next", "limit_param": "page_size"}
    windows = {"chained": True, "sizes": (50,), "path": "/cursor/", "records": "results"}
    return Server(
        name="drf",
        title="Django 5.2 + REST framework 3.18 on sqlite: page, limit/offset, cursor; max 100",
        argv=python_app("drf_app.py", pass_work_dir=True),
        prepare=write_json_dataset,
        ready="/page/?page_size=1",
        reference=lambda base: follow(
            f"{base}/limit/?limit=100", lambda b: b["results"], lambda b: b["next"]
        ),
        installed=SERVER_PY,
        styles=(
            Style(
                "page",
                "/page/",
                {"style": "page", "page_param": "page", "page_size_param": "page_size"},
                records="results",
                totals={"known": {"total": "body:count"}, "unknown": {"total": "unknown"}},
                cap=100,
                note="404 past the last page; page_size above 100 silently cut to 100",
            ),
            Style(
                "limit-offset",
                "/limit/",
                {"style": "offset", "offset_param": "offset", "limit_param": "limit"},
                records="results",
                totals={"known": {"total": "body:count"}, "unknown": {"total": "unknown"}},
                cap=100,
            ),
            Style(
                "limit-offset-200-records",
                "/limit/?seq__lt=200",
                {"style": "offset", "offset_param": "offset", "limit_param": "limit"},
                records="results",
                totals={"known": {"total": "body:count"}, "unknown": {"total": "unknown"}},
                sizes=(250,),
                cap=100,
                note="200 records, capped at 100 per page: offset 250 lies past the end",
                reference=lambda base: follow(
                    f"{base}/limit/?limit=100&seq__lt=200",
                    lambda b: b["results"],
                    lambda b: b["next"],
                ),
            ),
            Style(
                "page-200-records",
                "/page/?seq__lt=200",
                {"style": "page", "page_param": "page", "page_size_param": "page_size"},
                records="results",
                totals={"known": {"total": "body:count"}, "unknown": {"total": "unknown"}},
                sizes=(250,),
                cap=100,
                reference=lambda base: follow(
                    f"{base}/limit/?limit=100&seq__lt=200",
                    lambda b: b["results"],
                    lambda b: b["next"],
                ),
            ),
            Style(
                "limit-offset-next-links",
                "/limit/",
                {"style": "link", "next_url": "body:next", "limit_param": "limit"},
                records="results",
                totals={"unknown": {}, "known": {"total": "body:count"}},
                cap=100,
                chained=True,
            ),
            Style("cursor", "/cursor/", cursor, records="results", cap=100, chained=True),
            Style(
                "cursor-8-windows",
                pagination=partitioned(cursor, ("seq__gte", "seq__lt"), 0, n),
                **windows,
            ),
            Style(
                "cursor-8-windows-inclusive-as-half-open",
                pagination=partitioned(cursor, ("seq__gte", "seq__lte"), 0, n),
                expect="either",
                note="seq__lte is inclusive, the config says [from, to)",
                **windows,
            ),
            Style(
                "cursor-8-windows-to_inclusive",
                pagination=partitioned(cursor, ("seq__gte", "seq__lte"), 0, n, to_inclusive=True),
                pending=UNKNOWN_KEY.format("partition.to_inclusive"),
                **windows,
            ),
        ),
    )


def datasette(n: int) -> Server:
    table = "/data/items.json?_shape=objects"
    count = {"unknown": {}, "known": {"total": "body:filtered_table_rows_count"}}
    cursor = {
        "style": "cursor",
        "cursor_param": "_next",
        "next_cursor": "body:next",
        "limit_param": "_size",
    }
    windows = {"chained": True, "sizes": (100,), "path": table, "records": "rows"}
    sql = "select * from items order by id limit :limit offset :offset"
    sql_1500 = "select * from items where id <= 1500 order by id limit :limit offset :offset"
    return Server(
        name="datasette",
        title="datasette 0.65 on sqlite: next token, next_url, Link; _size <= max_returned_rows",
        argv=lambda work, port: [
            str(SERVER_PY.parent / "datasette"),
            "serve",
            str(work / "data.db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--setting",
            "default_page_size",
            "100",
        ],
        prepare=write_datasette_db,
        ready="/data/items.json?_size=1",
        reference=lambda base: follow(
            f"{base}{table}&_size=1000", lambda b: b["rows"], lambda b: b["next_url"]
        ),
        installed=SERVER_PY.parent / "datasette",
        styles=(
            Style(
                "next-token",
                table,
                cursor,
                records="rows",
                totals=count,
                sizes=(100, 2000),
                cap=1000,
                over_cap="refused",
                chained=True,
            ),
            Style(
                "next_url",
                table,
                {"style": "link", "next_url": "body:next_url", "limit_param": "_size"},
                records="rows",
                totals=count,
                sizes=(100, 2000),
                cap=1000,
                over_cap="refused",
                chained=True,
            ),
            Style(
                "link-header",
                table,
                {"style": "link", "next_url": "link-header", "limit_param": "_size"},
                records="rows",
                sizes=(100,),
                chained=True,
            ),
            Style(
                "next-token-8-windows",
                pagination=partitioned(cursor, ("id__gte", "id__lt"), 1, n + 1),
                **windows,
            ),
            Style(
                "next-token-8-windows-inclusive-as-half-open",
                pagination=partitioned(cursor, ("id__gte", "id__lte"), 1, n + 1),
                expect="either",
                note="id__lte is inclusive, the config says [from, to)",
                **windows,
            ),
            Style(
                "next-token-8-windows-to_inclusive",
                pagination=partitioned(cursor, ("id__gte", "id__lte"), 1, n + 1, to_inclusive=True),
                pending=UNKNOWN_KEY.format("partition.to_inclusive"),
                **windows,
            ),
            Style(
                "sql-limit-offset",
                "/data.json?" + urllib.parse.urlencode({"sql": sql, "_shape": "objects"}),
                {"style": "offset", "offset_param": "offset", "limit_param": "limit"},
                records="rows",
                totals={"unknown": {"total": "unknown"}},
                sizes=(100, 2000),
                cap=1000,
                note="a SQL query with :limit/:offset; above 1000 rows truncated: true, silently",
            ),
            Style(
                "sql-limit-offset-1500-rows",
                "/data.json?" + urllib.parse.urlencode({"sql": sql_1500, "_shape": "objects"}),
                {"style": "offset", "offset_param": "offset", "limit_param": "limit"},
                records="rows",
                totals={"unknown": {"total": "unknown"}},
                sizes=(2000,),
                cap=1000,
                note="1500 rows, 1000 per answer at most: offset 2000 lies past the end",
                reference=lambda base: follow(
                    f"{base}{table}&_size=1000&id__lte=1500",
                    lambda b: b["rows"],
                    lambda b: b["next_url"],
                ),
            ),
        ),
    )


def smorest(n: int) -> Server:
    page = {"style": "page", "page_param": "page", "page_size_param": "page_size"}
    return Server(
        name="flask-smorest",
        title="flask-smorest 0.47 (Flask 3): ?page=&page_size=, X-Pagination JSON header; max 100",
        argv=python_app("smorest_app.py"),
        prepare=write_json_dataset,
        ready="/items/?page_size=1",
        reference=lambda base: smorest_pages(f"{base}/items/"),
        installed=SERVER_PY,
        styles=(
            Style(
                "page",
                "/items/",
                page,
                totals={
                    "header": {"total": "header:X-Pagination.total"},
                    "header-pages": {"total_pages": "header:X-Pagination.total_pages"},
                    "unknown": {"total": "unknown"},
                },
                cap=100,
                over_cap="refused",
                pending="does not tell the total (header:X-Pagination.",
                note="the total only inside a JSON-valued header",
            ),
        ),
    )


SERVERS: tuple[Callable[[int], Server], ...] = (
    json_server_017,
    json_server_1,
    fastapi,
    drf,
    datasette,
    smorest,
)
