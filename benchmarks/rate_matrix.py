"""The rate-limit matrix (issue 10): harvester against every family of real rate limiters.

    python benchmarks/rate_matrix.py [--quick] [--full] [--only SUBSTRING] [--json OUT] [--scale X]
    python benchmarks/rate_matrix.py --tune [--quick] [--only SUBSTRING] [--tune-duration S]

Each row starts benchmarks/limiter_server.py (a loopback API of 10,000 records, 20 ms per
admitted request, auth none) behind one limiter, with one header style and one Retry-After
style (see limiter_server.py for the limiters, which of them are the `limits` library's, and
what each header says). Against a fresh limiter each time, it runs:

- harvester: `python -m harvester cfg.yaml`, 16 workers, no rate_limit, default retry
  settings, pages of 10, so 1,000 requests (1,500 for 60 s windows, 4,000 for a limit on
  requests in flight: each row lasts about 20 s at its limit, see IN_FLIGHT_PAGES);
- sequential: benchmarks/sequential_client.py, a `requests` loop, one page after another. It
  reads no rate-limit headers, so it runs once per limiter and Retry-After style, and rows
  differing only in headers share it.

Per row: `% limit` = requests answered 2xx per second, from the first request the server saw
to its last answer, divided by the true limit (its sustained rate: rate, or quota / window;
for the concurrency limiter, what exactly that many aiohttp workers get through, measured in the
same row). Window limiters can exceed 100% over a run of a few windows. `refused` = share of
requests answered 429/503. `wall s` = the client's process, start-up included. The bar (issue
10): harvester >= 90% of the limit, <= 2% refused, a complete output, and a span no longer
than the sequential client's (within 0.1%, a tie: where the limiter's own pace holds both
clients, TIE). The long-quota rows set retry.max_retry_after below the quota's
reset; harvester must hold until the reset (or, with retry.on_long_quota: fail, fail at once).

--tune runs `harvester tune` against a subset at 30 requests per second instead: the rate it
recommends against the limit (the bar: 80-100%) and a harvest with its advice against the
untuned default (the bar: no slower, with 1% allowed for the machine's noise). Where
tune advises no rate (an API that queues rather than refuses), the rate its workers deliver
stands in for one and must reach 80%.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rate_runs import (
    Run,
    calibrate,
    harvest_config,
    limiter_server,
    run_harvester,
    run_sequential,
    run_tune,
)

LATENCY = 0.02
PAGE_SIZE = 10
BAR_SHARE, BAR_REFUSED = 0.90, 0.02
TUNE_LOW, TUNE_HIGH = 0.80, 1.00
# "No slower" allows this much for the noise of a shared machine between two runs.
SAME_SPAN = 0.01
# Beside the sequential client, spans this close are a tie: where a limiter's own pace holds
# both (a queue answering one request every 50 ms, 1,000 requests in 49.97 s whatever the
# client), they differ by the clock's and the loop's jitter, half a millisecond in 50 s.
TIE = 0.001


# A limit of 4 requests in flight admits about 180 a second at 20 ms: 1,000 requests would last
# 5.5 s, and the one refusal that finds such a limit (it says nothing before it refuses), held
# for its whole-second Retry-After, would cost a fifth of the row (84.6% of the limit at best).
# At 4,000 the row lasts about 22 s, as long as the 50/s rows' 20 s, so each row weighs the
# finding of its limit alike and the share is of the sustained rate.
IN_FLIGHT_PAGES = 4000


@dataclass(frozen=True, kw_only=True)
class Family:
    """One limiter, as limiter_server.py takes it."""

    name: str
    limiter: str
    rate: float  # the sustained rate; for concurrency: unused (calibrated)
    burst: int = 1
    window: int = 1
    status: int = 429
    pages: int = 1000

    def options(self, headers: str, retry_after: str) -> list[str]:
        return [
            *("--limiter", self.limiter, "--rate", f"{self.rate:g}", "--burst", str(self.burst)),
            *("--window", str(self.window), "--status", str(self.status)),
            *("--headers", headers, "--retry-after", retry_after),
            *("--records", str(self.pages * PAGE_SIZE), "--latency", str(LATENCY)),
        ]


@dataclass(frozen=True, kw_only=True)
class Row:
    family: Family
    headers: str
    retry_after: str
    retry: tuple[tuple[str, Any], ...] = ()  # retry settings for harvester

    @property
    def name(self) -> str:
        extra = "".join(f", {k}: {v}" for k, v in self.retry)
        return f"{self.family.name} / headers {self.headers} / RA {self.retry_after}{extra}"

    @property
    def expects_failure(self) -> bool:
        return dict(self.retry).get("on_long_quota") == "fail"


# Header style and Retry-After style of each row: the cases the issue names, not every one.
VARIANTS = [
    ("none", "ceil"),
    ("none", "date"),
    ("none", "exact"),
    ("none", "none"),
    ("x", "ceil"),
    ("ietf", "ceil"),
    ("ietf", "none"),
]
FEW = [("none", "ceil"), ("none", "none"), ("x", "ceil")]
EVERY = [(h, r) for h in ("none", "x", "ietf") for r in ("ceil", "date", "exact", "none")]


def families(quick: bool) -> tuple[list[Family], list[Family], list[Family], Family]:
    """(main families, secondary ones, those below the sequential pace, the long quota)."""
    pages = 300 if quick else 1000
    main = [
        Family(name="token bucket 50/s b5", limiter="token-bucket", rate=50, burst=5),
        Family(name="token bucket 50/s b100", limiter="token-bucket", rate=50, burst=100),
        Family(name="gcra 50/s b1", limiter="gcra", rate=50, burst=1),
        Family(name="fixed 1s wall 50/s", limiter="fixed-wall", rate=50),
        Family(name="fixed 1s first 50/s", limiter="fixed-first", rate=50),
        Family(name="fixed 10s wall 50/s", limiter="fixed-wall", rate=50, window=10),
        Family(name="fixed 10s first 50/s", limiter="fixed-first", rate=50, window=10),
        Family(name="sliding log 1s 50/s", limiter="moving", rate=50),
        Family(name="sliding counter 1s 50/s", limiter="sliding", rate=50),
        Family(name="leaky queue 50/s b10 503", limiter="leaky", rate=50, burst=10, status=503),
        Family(
            name="concurrency 4 429",
            limiter="concurrency",
            rate=0,
            burst=4,
            pages=IN_FLIGHT_PAGES,
        ),
    ]
    secondary = [
        Family(name="leaky queue 50/s b10 429", limiter="leaky", rate=50, burst=10),
        Family(
            name="concurrency 4 503",
            limiter="concurrency",
            rate=0,
            burst=4,
            status=503,
            pages=IN_FLIGHT_PAGES,
        ),
        Family(name="fixed 60s wall 20/s", limiter="fixed-wall", rate=20, window=60, pages=1500),
        Family(name="fixed 60s first 20/s", limiter="fixed-first", rate=20, window=60, pages=1500),
    ]
    slow = [
        Family(name="token bucket 20/s b5", limiter="token-bucket", rate=20, burst=5),
        Family(name="gcra 20/s b1", limiter="gcra", rate=20, burst=1),
        Family(name="fixed 1s wall 20/s", limiter="fixed-wall", rate=20),
        Family(name="sliding log 1s 20/s", limiter="moving", rate=20),
        Family(name="sliding counter 1s 20/s", limiter="sliding", rate=20),
        Family(name="leaky queue 20/s b10 503", limiter="leaky", rate=20, burst=10, status=503),
    ]
    # 60% of the requests fit in the first window; the rest wait for its far reset.
    window = 8 if quick else 20
    quota = Family(
        name=f"quota {round(pages * 0.6)}/{window}s",
        limiter="quota",
        rate=pages * 0.6 / window,
        window=window,
    )
    if quick:
        return (
            [_scaled(f, pages) for f in (main[0], main[3], main[4], main[9], main[10])],
            [],
            [],
            _scaled(quota, pages),
        )
    return main, secondary, slow, quota


def _scaled(family: Family, pages: int) -> Family:
    return Family(**{**family.__dict__, "pages": pages})


def matrix(quick: bool, full: bool) -> list[Row]:
    main, secondary, slow, quota = families(quick)
    if quick:
        picks = [("none", "ceil"), ("ietf", "ceil"), ("x", "date"), ("none", "none"), ("x", "ceil")]
        rows = [
            Row(family=f, headers=h, retry_after=r) for f, (h, r) in zip(main, picks, strict=True)
        ]
    else:
        rows = [
            Row(family=f, headers=h, retry_after=r)
            for f in main
            for h, r in (EVERY if full else VARIANTS)
        ]
        # Flask-Limiter (the `limits` strategies behind a Flask app), as it renders its headers.
        flask = ("fixed-first", "moving", "sliding")
        rows += [
            Row(family=f, headers="x", retry_after="flask")
            for f in main
            if f.limiter in flask and f.window == 1
        ]
        for f in secondary:
            rows += [Row(family=f, headers=h, retry_after=r) for h, r in (EVERY if full else FEW)]
        rows += [Row(family=f, headers="none", retry_after="ceil") for f in slow]
    hold = (("max_retry_after", quota.window // 2),)
    quota_variants = [("x", "ceil"), ("ietf", "ceil"), ("none", "ceil"), ("none", "date")]
    quota_variants += [("none", "none")]
    if quick:
        quota_variants = [("x", "ceil")]
    rows += [Row(family=quota, headers=h, retry_after=r, retry=hold) for h, r in quota_variants]
    fail = (*hold, ("on_long_quota", "fail"))
    rows.append(Row(family=quota, headers="x", retry_after="ceil", retry=fail))
    return rows


@dataclass(kw_only=True)
class Result:
    row: Row
    limit: float
    harvester: Run
    sequential: Run | None

    @property
    def share(self) -> float:
        return self.harvester.ok_per_second / self.limit if self.limit else 0.0

    def misses(self) -> list[str]:
        """What keeps this row from the bar; empty when it passes."""
        h, s = self.harvester, self.sequential
        if self.row.expects_failure:
            quick = h.exit_code == 1 and h.wall < 10
            if quick:
                return []
            return [f"expected a failure at once, got exit {h.exit_code}: {_short(h.error)}"]
        missed = []
        if not h.complete:
            missed.append(f"incomplete ({_short(h.error)})")
        if self.share < BAR_SHARE:
            missed.append(f"{self.share:.1%} of limit")
        if h.refused_share > BAR_REFUSED:
            missed.append(f"{h.refused_share:.1%} refused")
        if s is not None and s.complete and h.span > s.span * (1 + TIE):
            missed.append("slower than sequential")
        return missed

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row.name,
            "limit": self.limit,
            "share": self.share,
            "passed": not self.misses(),
            "misses": self.misses(),
            "harvester": self.harvester.summary(),
            "sequential": self.sequential.summary() if self.sequential else None,
        }


def run_row(
    row: Row,
    folder: Path,
    cache: Sequentials,
    tree: Path | None = None,
    oracle: float | None = None,
    sequential: bool = True,
) -> Result:
    """One row against a fresh limiter. The sequential client runs once per `cache` key: rows
    that differ only in headers share it (and wait for it, when rows run side by side).
    `oracle`: harvester is told the true limit instead of learning it, `rate_limit` at that
    share of it (for a concurrency limit, `workers` at it): what pacing alone achieves on this
    machine, which bounds what any learning could. Not `sequential`: harvester alone (the
    sequential client, refused half the time by a limit under its pace, runs six times as long)."""
    f = row.family
    ideal = f.pages / f.rate if f.rate else f.pages * LATENCY
    timeout = max(120.0, 6 * ideal)
    records = f.pages * PAGE_SIZE
    key = (f.name, row.retry_after)
    with limiter_server(f.options(row.headers, row.retry_after), folder / "server.log") as url:
        limit = f.rate or calibrate(url, f.burst, PAGE_SIZE, min(f.pages, 500))
        config = harvest_config(url, folder / "out.jsonl", page_size=PAGE_SIZE)
        if row.retry:
            config["retry"] = dict(row.retry)
        if oracle is not None:
            if f.rate:
                config["concurrency"]["rate_limit"] = round(oracle * f.rate, 3)
            else:
                config["concurrency"]["workers"] = f.burst
        harvester = run_harvester(url, folder, config, records=records, timeout=timeout, tree=tree)
        if STOPPING.is_set():  # terminated meanwhile: no sequential client starts
            raise SystemExit(143)
        if row.expects_failure or not sequential:
            return Result(row=row, limit=limit, harvester=harvester, sequential=None)
        with cache.lock:
            ours = key not in cache.runs
            if ours:
                cache.runs[key] = Future()
        if ours:
            cache.runs[key].set_result(
                run_sequential(url, folder, page_size=PAGE_SIZE, records=records, timeout=timeout)
            )
    return Result(row=row, limit=limit, harvester=harvester, sequential=cache.runs[key].result())


@dataclass
class Sequentials:
    """The sequential client's runs, by (family, Retry-After style)."""

    runs: dict[tuple[str, str], Future[Run]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _detail(run: Run) -> str:
    """harvester's own account: cool-downs, pause, the rate and concurrency it ended with."""
    s = run.stats
    if not s:
        return run.error or ""
    text = (
        f"cd {s.get('cool_downs', 0)} ({s.get('cool_down_seconds', 0):.1f} s), "
        f"rate {s.get('rate_limit') or '-'}, conc {s.get('concurrency_limit')}, "
        f"retries {s.get('retries_total', 0)}"
    )
    return text if run.exit_code == 0 else f"{text}; {_short(run.error)}"


def _short(error: str | None) -> str:
    """An error without its URL and body excerpt: what a table cell has room for."""
    text = (error or "").split(": {", 1)[0]
    return re.sub(r" at http://\S+", "", text)[:160]


def print_matrix(results: list[Result]) -> None:
    print(
        "| limiter | headers | Retry-After | limit/s | harvester % limit | refused | wall s "
        "| span s | sequential % limit | refused | wall s | span s | bar | misses "
        "| harvester detail |"
    )
    print("|" + "---|" * 15)
    for r in results:
        h, s = r.harvester, r.sequential
        seq = ["", "", "", ""]
        if s is not None:
            seq = [
                f"{s.ok_per_second / r.limit:.0%}",
                f"{s.refused_share:.1%}",
                f"{s.wall:.1f}",
                f"{s.span:.1f}",
            ]
        retry_after = r.row.retry_after + "".join(f", {k}: {v}" for k, v in r.row.retry)
        cells = [
            r.row.family.name,
            r.row.headers,
            retry_after,
            f"{r.limit:.1f}",
            f"{r.share:.0%}" if h.complete else "incomplete",
            f"{h.refused_share:.1%}",
            f"{h.wall:.1f}",
            f"{h.span:.1f}",
            *seq,
            "pass" if not r.misses() else "FAIL",
            "; ".join(r.misses()),
            _detail(h).replace("|", "/"),
        ]
        print("| " + " | ".join(cells) + " |")
    passed = sum(1 for r in results if not r.misses())
    print(f"\n{passed} of {len(results)} rows meet the bar")


TUNE_PICKS = [
    ("token bucket", "token-bucket", 5, 1, 429, "none", "ceil"),
    ("token bucket b100", "token-bucket", 100, 1, 429, "none", "ceil"),
    ("fixed 1s wall", "fixed-wall", 1, 1, 429, "ietf", "ceil"),
    ("sliding log 1s", "moving", 1, 1, 429, "x", "ceil"),
    ("sliding counter 1s", "sliding", 1, 1, 429, "none", "ceil"),
    ("leaky queue b10", "leaky", 10, 1, 503, "none", "none"),
    ("concurrency 4", "concurrency", 4, 1, 429, "none", "ceil"),
]
TUNE_RATE = 30


def tune_matrix(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    pages = 300 if args.quick else 1000
    picks = TUNE_PICKS[:2] if args.quick else TUNE_PICKS
    duration = args.tune_duration or (10.0 if args.quick else 60.0)
    rows: list[dict[str, Any]] = []
    print(
        "| limiter | limit/s | tune s | workers | rate_limit | % limit | advised span s (refused) "
        "| default span s (refused) | bar | misses |\n|" + "---|" * 10
    )
    for name, limiter, burst, window, status, headers, retry_after in picks:
        rate = 0 if limiter == "concurrency" else TUNE_RATE
        label = f"{name} {rate}/s" if rate else name
        if args.only and args.only not in label:
            continue
        f = Family(
            name=label,
            limiter=limiter,
            rate=rate,
            burst=burst,
            window=window,
            status=status,
            pages=pages,
        )
        row = _tune_row(f, headers, retry_after, duration, folder, args.tree)
        rows.append(row)
        print(_tune_line(row), flush=True)
    return rows


def _tune_row(
    f: Family, headers: str, retry_after: str, duration: float, folder: Path, tree: Path | None
) -> dict[str, Any]:
    records, timeout = f.pages * PAGE_SIZE, max(120.0, 6 * f.pages / (f.rate or 20))
    with limiter_server(f.options(headers, retry_after), folder / "server.log") as url:
        limit = f.rate or calibrate(url, f.burst, PAGE_SIZE, min(f.pages, 500))
        config = harvest_config(url, folder / "out.jsonl", page_size=PAGE_SIZE)
        tuned = run_tune(url, folder, config, duration=duration, max_workers=64, tree=tree)
        advised = dict(config, concurrency={"workers": tuned.workers or 16})
        if tuned.rate_limit:
            advised["concurrency"]["rate_limit"] = tuned.rate_limit
        bounds: dict[str, Any] = {"records": records, "timeout": timeout, "tree": tree}
        with_advice = run_harvester(url, folder, advised, **bounds)
        default = run_harvester(url, folder, config, **bounds)
    share = tuned.rate_limit / limit if tuned.rate_limit else None
    misses = []
    if share is None:
        # No rate advised (the API queued rather than refused, say): what the advised workers
        # alone deliver stands for it, and must reach the bar's floor.
        delivered = with_advice.ok_per_second / limit if limit else 0.0
        if delivered < TUNE_LOW:
            misses.append(f"no rate recommended; its workers reach {delivered:.0%} of limit")
    elif not TUNE_LOW <= share <= TUNE_HIGH:
        misses.append(f"rate {share:.0%} of limit")
    if not with_advice.complete:
        misses.append(f"advised harvest incomplete ({with_advice.error})")
    elif default.complete and with_advice.span > default.span * (1 + SAME_SPAN):
        misses.append("advised harvest slower than default")
    return {
        "limiter": f"{f.name} / headers {headers} / RA {retry_after}",
        "limit": limit,
        "tune": tuned.__dict__,
        "share": share,
        "advised": with_advice.summary(),
        "default": default.summary(),
        "passed": not misses,
        "misses": misses,
    }


def _span_refused(run: dict[str, Any]) -> str:
    server = run["server"]
    refused = server.get("refused", 0) / server["requests"] if server.get("requests") else 0.0
    return f"{server.get('span', 0):.1f} ({refused:.1%})"


def _tune_line(row: dict[str, Any]) -> str:
    t, share = row["tune"], row["share"]
    cells = [
        row["limiter"],
        f"{row['limit']:.1f}",
        f"{t['wall']:.1f}",
        str(t["workers"]),
        str(t["rate_limit"]),
        f"{share:.0%}" if share is not None else "-",
        _span_refused(row["advised"]),
        _span_refused(row["default"]),
        "pass" if row["passed"] else "FAIL",
        "; ".join(row["misses"]),
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    # Terminated, the matrix unwinds (SystemExit): each server and client it started stops too.
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rows of 300 requests")
    parser.add_argument("--full", action="store_true", help="every header x Retry-After style")
    parser.add_argument(
        "--only", metavar="SUBSTRING", help="the rows whose name holds it (or a regex matches)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results here")
    parser.add_argument("--list", action="store_true", help="print the row names and exit")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="rows run side by side (each row's clients use little CPU at these rates; the "
        "figures are ratios within a row, but more jobs means more noise)",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        metavar="DIR",
        help="run the harvester package under DIR (e.g. `git archive REV harvester | tar -x "
        "-C DIR`) instead of the installed one: a before/after comparison",
    )
    parser.add_argument(
        "--oracle",
        type=float,
        metavar="SHARE",
        help="tell harvester the true limit (rate_limit = SHARE x limit; workers = the "
        "concurrency limit) instead of letting it learn: what pacing alone achieves here",
    )
    parser.add_argument(
        "--no-sequential",
        action="store_true",
        help="run harvester alone: no sequential client beside it, and no comparison with one",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="X",
        help="each row's requests times this: what learning the limit costs is spread over "
        "more of them, and the figures tend to the steady state",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=LATENCY,
        metavar="S",
        help=f"the API's time per admitted request, seconds (the issue's matrix: {LATENCY})",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep each row's folder under DIR (row-N: harvester.log, server.log, stats.json, "
        "row.txt naming the row) instead of a temporary one: what a run did, to trace a miss",
    )
    parser.add_argument("--tune", action="store_true", help="the tune table instead")
    parser.add_argument(
        "--tune-duration", type=float, metavar="S", help="harvester tune --duration"
    )
    args = parser.parse_args()
    if args.list:
        for row in matrix(args.quick, args.full):
            if not args.only or _picked(args.only, row.name):
                print(row.name)
        return
    _set_latency(args.latency)
    started = time.perf_counter()
    document: dict[str, Any] = {
        "latency": LATENCY,
        "command": shlex.join([sys.executable, *sys.argv]),
        "harvester": str(args.tree.resolve()) if args.tree else _git_head(),
        "oracle": args.oracle,
        "scale": args.scale,
    }
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = args.keep
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rate-matrix-")))
        if args.tune:
            document["tune"] = tune_matrix(args, tmp)
        else:
            document["rows"] = _run_matrix(args, tmp, document)
    document["wall_seconds"] = time.perf_counter() - started
    print(f"\nwhole run: {document['wall_seconds'] / 60:.1f} min")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def _set_latency(seconds: float) -> None:
    global LATENCY
    LATENCY = seconds


# Set on SIGTERM: rows side by side (--jobs) start no more.
STOPPING = threading.Event()


def _stop(*_: object) -> None:
    """Terminated: stop every server and client this process started (rows running in other
    threads would otherwise go on to the end), and unwind (SystemExit)."""
    STOPPING.set()
    for pid in _children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    sys.exit(143)


def _children() -> list[int]:
    """The processes whose parent is this one (from /proc; none where there is no /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid ...: comm may hold spaces and parentheses.
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.append(int(stat.parent.name))
    return found


def _picked(only: str, name: str) -> bool:
    """--only: a substring of the row's name, or a regular expression that matches in it."""
    return only in name or re.search(only, name) is not None


def _git_head() -> str:
    """The checkout's commit, and whether its harvester/ has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "harvester"], capture_output=True, timeout=30
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def _run_matrix(args: argparse.Namespace, folder: Path, document: dict[str, Any]) -> list[Any]:
    rows = [
        dataclasses.replace(r, family=_scaled(r.family, round(r.family.pages * args.scale)))
        for r in matrix(args.quick, args.full)
        if not args.only or _picked(args.only, r.name)
    ]
    print(f"{len(rows)} rows, {args.jobs} at a time", flush=True)
    cache = Sequentials()
    results: dict[int, Result] = {}
    lock = threading.Lock()

    def one(i: int, row: Row) -> None:
        if STOPPING.is_set():
            return
        # Each row in a folder of its own: with --jobs, rows run side by side.
        here = folder / f"row-{i}"
        here.mkdir(exist_ok=True)
        (here / "row.txt").write_text(row.name + "\n")
        result = run_row(row, here, cache, args.tree, args.oracle, not args.no_sequential)
        h = result.harvester
        verdict = "pass" if not result.misses() else "FAIL: " + "; ".join(result.misses())
        with lock:
            results[i] = result
            print(
                f"[{len(results)}/{len(rows)}] {row.name}: {result.share:.0%} of limit, "
                f"{h.refused_share:.1%} refused, span {h.span:.1f} s "
                f"(sequential {f'{result.sequential.span:.1f} s' if result.sequential else '-'}) "
                f"{verdict}",
                flush=True,
            )
            if args.json:  # as it goes, so that an interrupted run keeps what it measured
                args.json.parent.mkdir(parents=True, exist_ok=True)
                document["rows"] = [results[k].as_dict() for k in sorted(results)]
                args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for done in [pool.submit(one, i, row) for i, row in enumerate(rows)]:
            done.result()
    ordered = [results[k] for k in sorted(results)]
    print()
    print_matrix(ordered)
    return [r.as_dict() for r in ordered]


if __name__ == "__main__":
    main()
