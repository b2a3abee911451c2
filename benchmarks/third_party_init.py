"""`harvester init` against API servers somebody else wrote: its config must harvest exactly.

    make third-party-init                  # after `make third-party` installed the servers
    .venv/bin/python benchmarks/third_party_init.py [--only TEXT] [--json PATH] [--records N]

For each endpoint below, its server (from third_party_cases.py, seeded as third_party.py seeds
it) is started behind a counting reverse proxy on loopback, so that the requests are counted as
a server sees them. Then the real CLI, with no auth (these servers are open):

    harvester init PROXY_URL -o WORK/config.yaml --pace 0     # at most 20 requests
    harvester WORK/config.yaml                                # through the same proxy

and the output is judged as third_party.py judges it: the records the server serves to a plain
sequential client, in the same order, every value exact (datasette's default shape: its rows as
arrays, or as objects if init asked for ?_shape=objects). The table shows what init detected,
read back from the config it wrote (with harvester's defaults for the keys it left out).
Each endpoint's config, init's output and the proxy's log of init's requests (headers and the
top of each body) are kept in benchmarks/.third_party/init/<server>/<endpoint>/.
Exits 1 unless every endpoint harvests exactly after an init of at most 20 requests.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from counting_proxy import Proxy
from third_party import HARVESTER_PY, ROOT, judge, last_line, running
from third_party_cases import (
    DEFAULT_RECORDS,
    SERVERS,
    STATE,
    Case,
    Server,
    Style,
    follow,
    seeded_records,
    smorest_pages,
)

from harvester.config import load_config
from harvester.errors import ConfigError

MAX_INIT_REQUESTS = 20  # issue 16: "at most 20 requests per init, counted by the server"
INIT = "{harvester} init {url} -o {config} --pace 0"


@dataclass(frozen=True)
class Endpoint:
    server: str  # a Server's name in third_party_cases.py
    path: str  # appended to the server's base URL: the URL init is given
    # base URL -> what the endpoint serves, when it is not the server's own reference
    reference: Callable[[str], list[Any]] | None = None
    # An output as good, judged when the file is not the reference: datasette's rows as objects
    # (init may ask for ?_shape=objects where the default shape's rows are arrays).
    also: Callable[[str], list[Any]] | None = None

    @property
    def name(self) -> str:
        return f"{self.server} {self.path}"


def datasette_arrays(base: str) -> list[Any]:
    """datasette's default shape: each row an array, in the order of `columns`."""
    url = f"{base}/data/items.json?_size=1000"
    return follow(url, lambda b: b["rows"], lambda b: b["next_url"])


def datasette_objects(base: str) -> list[Any]:
    """The same rows as objects (?_shape=objects), as datasette's server reference reads them."""
    url = f"{base}/data/items.json?_shape=objects&_size=1000"
    return follow(url, lambda b: b["rows"], lambda b: b["next_url"])


ENDPOINTS = (
    Endpoint("fastapi", "/limit-offset"),  # LimitOffsetPage
    Endpoint("fastapi", "/page"),  # Page
    Endpoint("fastapi", "/links"),  # links.Page
    Endpoint("fastapi", "/page-no-total"),  # Page with UseIncludeTotal(False)
    Endpoint("drf", "/page/"),  # PageNumberPagination
    Endpoint("drf", "/limit/"),  # LimitOffsetPagination
    Endpoint("drf", "/cursor/"),  # CursorPagination
    Endpoint("datasette", "/data/items.json", datasette_arrays, also=datasette_objects),
    Endpoint("datasette", "/data/items.json?_shape=objects"),
    Endpoint("json-server-0.17", "/items"),
    Endpoint("json-server-1.0", "/items"),
    Endpoint("flask-smorest", "/items/", lambda base: smorest_pages(f"{base}/items/")),
)


# --- one endpoint -----------------------------------------------------------------------------


@dataclass
class Outcome:
    server: str
    endpoint: str
    init_exit: int | None  # None: killed after the timeout
    init_requests: int
    init_seconds: float
    detected: dict[str, Any] = field(default_factory=dict)
    harvest: str = "-"  # exact, wrong, failed, or - (no config to run)
    harvest_exit: int | None = None
    harvest_requests: int = 0
    written: int = 0
    expected: int = 0
    judged: str = ""  # third_party.py's counts: dup, miss, alt, order
    error: str = ""  # the last stderr line of the step that failed
    init_output: str = ""  # what init printed (its last lines)
    first_answer: dict[str, Any] = field(default_factory=dict)


def run(argv: list[str], log: Path, timeout: float) -> int | None:
    """The command with cwd and PYTHONPATH this checkout, stdout+stderr into `log`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()  # by its pid
            process.wait(timeout=10)
            return None


def detected(config_path: Path) -> tuple[dict[str, Any], Path | None]:
    """What the written config says, harvester's defaults filled in; and its output path."""
    try:
        config = load_config(config_path, keep_unset=True)
    except ConfigError as exc:
        return {"error": str(exc)}, None
    p = config.pagination
    params = {
        "offset": ("offset_param", "limit_param", "start"),
        "range": ("range_unit", "start"),
        "page": ("page_param", "page_size_param", "first_page"),
        "cursor": ("cursor_param", "next_cursor", "cursor_from_record", "limit_param"),
        "link": ("next_url", "limit_param"),
    }[p.style]
    shown = {name: getattr(p, name) for name in params if getattr(p, name) is not None}
    total = p.total_pages and f"pages {p.total_pages}" or p.total
    url = urllib.parse.urlsplit(config.source.url)
    query = "&".join(q for q in (url.query, urllib.parse.urlencode(config.source.params)) if q)
    found = {
        "url": url.path + (f"?{query}" if query else ""),  # the proxy's host left out
        "records": config.source.records or "(the body)",
        "style": p.style,
        "params": shown,
        "total": total,
        "page_size": p.page_size,
    }
    return found, Path(config.output.path)


def check(endpoint: Endpoint, server: Server, base: str, work: Path, args: Any) -> Outcome:
    """init through the proxy, then the harvest with the config it wrote, judged."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config = work / "config.yaml"
    reference = (endpoint.reference or server.reference)(base)
    with Proxy(base).serving() as proxy:
        url = proxy.url + endpoint.path
        argv: list[str] = []
        for word in shlex.split(args.init_cmd):
            cli = [str(HARVESTER_PY), "-m", "harvester"] if word == "{harvester}" else []
            argv += cli or [word.format(url=url, config=config)]
        started = time.monotonic()
        code = run(argv, work / "init.txt", args.timeout)
        seconds = time.monotonic() - started
        printed = (work / "init.txt").read_text(encoding="utf-8", errors="replace")
        (work / "proxy-init.json").write_text(json.dumps(proxy.log, indent=1), encoding="utf-8")
        outcome = Outcome(
            server.name,
            endpoint.path,
            code,
            proxy.count("init"),
            round(seconds, 1),
            init_output="\n".join(printed.strip().splitlines()[-25:]),
            first_answer=proxy.log[0] if proxy.log else {},
        )
        if code != 0 or not config.exists():
            outcome.error = last_line(work / "init.txt") or f"init exited {code}"
            return outcome
        outcome.detected, out = detected(config)
        if out is None:
            outcome.error = outcome.detected["error"]
            return outcome
        proxy.phase = "harvest"
        argv = [str(HARVESTER_PY), "-m", "harvester", str(config), "--progress", "none"]
        outcome.harvest_exit = run(argv, work / "harvest.txt", args.timeout)
        outcome.harvest_requests = proxy.count("harvest")
    case = Case(server.name, Style(endpoint.path, endpoint.path, {}), "unknown", 0, 0, None)
    error = last_line(work / "harvest.txt") if outcome.harvest_exit else ""
    result = judge(case, reference, out, outcome.harvest_exit, error)
    if result.verdict != "ok" and endpoint.also:
        other = judge(case, endpoint.also(base), out, outcome.harvest_exit, error)
        result = other if other.verdict == "ok" else result
    outcome.harvest = (
        "exact" if result.verdict == "ok" else "wrong" if outcome.harvest_exit == 0 else "failed"
    )
    outcome.written, outcome.expected, outcome.error = result.written, result.expected, error
    order = "in order" if result.in_order else "out of order"
    counts = f"dup {result.duplicates} miss {result.missing} alt {result.altered} {order}"
    example = f"; {result.example}" if result.example else ""
    outcome.judged = f"{counts}{example}"
    if result.verdict == "LEFT-FILE":  # the invariant: a failure leaves no file at the path
        outcome.error += f" (and left {out.name} at the output path)"
    return outcome


# --- the report -------------------------------------------------------------------------------


def table(outcomes: list[Outcome]) -> str:
    rows = [
        ("server", "endpoint", "init", "reqs", "records", "pagination", "total", "size", "harvest")
    ]
    for o in outcomes:
        d = o.detected
        params = " ".join(f"{k}={v}" for k, v in d.get("params", {}).items())
        url = d.get("url", o.endpoint)  # init changed the URL: e.g. it asked for another shape
        over = "!" if o.init_requests > MAX_INIT_REQUESTS else ""
        rows.append(
            (
                o.server,
                o.endpoint,
                "kill" if o.init_exit is None else str(o.init_exit),
                f"{o.init_requests}{over}",
                str(d.get("records", "-")) + (f" at {url}" if url != o.endpoint else ""),
                f"{d['style']} {params}" if "style" in d else "-",
                str(d.get("total", "-")),
                str(d.get("page_size", "-")),
                o.harvest + (f" {o.written}/{o.expected}" if o.harvest != "-" else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


def details(outcomes: list[Outcome]) -> str:
    lines: list[str] = []
    for o in outcomes:
        if o.harvest == "exact" and o.init_requests <= MAX_INIT_REQUESTS:
            continue
        lines.append(f"\n{o.server} {o.endpoint}: init exit {o.init_exit}, harvest {o.harvest}")
        if o.error:
            lines.append(f"    error: {o.error}")
        if o.harvest == "wrong":
            lines.append(f"    judged: {o.judged}")
        answer = o.first_answer
        if o.harvest == "-" and answer:
            lines.append(f"    first answer: {answer['request']} -> {answer.get('status')}")
            lines.extend(f"      {k}: {v}" for k, v in answer.get("headers", []))
            lines.append(f"      body: {' '.join(answer.get('body', '').split())[:300]}")
        if o.harvest == "-":
            lines.append("    init printed:")
            lines.extend(f"      {line}" for line in o.init_output.splitlines())
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", help="only the endpoints whose 'server path' contains this (or one of a,b)"
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per command")
    parser.add_argument(
        "--init-cmd",
        default=INIT,
        help="the init command, {url} and {config} filled in, {harvester} the CLI "
        f"(default: {INIT!r}); a stand-in to test this script with",
    )
    args = parser.parse_args()
    seeded = seeded_records(args.records)
    servers = {server.name: server for server in (make(args.records) for make in SERVERS)}
    wanted = args.only.split(",") if args.only else [""]
    chosen = [e for e in ENDPOINTS if any(w in e.name for w in wanted)]
    outcomes: list[Outcome] = []
    for name in dict.fromkeys(e.server for e in chosen):
        server = servers[name]
        if not server.installed.exists():
            print(f"{name}: not installed (run `make third-party`), skipped", flush=True)
            continue
        work = STATE / "init" / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        with running(server, work, seeded) as base:
            for endpoint in (e for e in chosen if e.server == name):
                folder = work / endpoint.path.strip("/").replace("/", "_").replace("?", "_")
                outcome = check(endpoint, server, base, folder, args)
                outcomes.append(outcome)
                print(
                    f"{outcome.harvest:<6} {endpoint.name}: init exit {outcome.init_exit}, "
                    f"{outcome.init_requests} requests {outcome.init_seconds} s",
                    flush=True,
                )
    print(f"\n{table(outcomes)}\n{details(outcomes)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2), encoding="utf-8")
    good = [o for o in outcomes if o.harvest == "exact" and o.init_requests <= MAX_INIT_REQUESTS]
    print(f"\n{len(good)} of {len(outcomes)} endpoints: init <= 20 requests and an exact harvest")
    return 0 if len(good) == len(outcomes) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
