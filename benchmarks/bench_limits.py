"""harvester against the limits: the transport, the API's rate limit, the CPU floor, memory.

    python benchmarks/bench_limits.py [--quick] [--only latency-bound|rate-limited|cpu-bound|memory]

Each scenario starts the demo API in a process of its own on loopback, then runs each client as
a child process so that its CPU seconds and peak RSS are its own (rusage from wait4): harvester
(the CLI), `sequential` (the loop a beginner writes with requests) and `probe` (aiohttp GETting
every page and discarding it: the transport's limit); see clients.py. Except under the rate
limit, every page is fetched once before the clients run, so the server's record cache is warm
and no client pays for it.

wall s: the client's own time, token request to last write (Python start-up excluded); proc s:
the whole process. CPU s and RSS include start-up. x ideal = wall s / ideal, where:
latency-bound: pages x latency / workers; rate-limited: pages / rate. The CPU floor is orjson
parsing every page body and writing its records, in this process, with no HTTP at all.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
from clients import count_lines, floor_cpu, get_pages, measure, startup_cpu
from common import demo_config

from harvester.demo.launch import demo_process

CLIENTS_PY = str(Path(__file__).with_name("clients.py"))
RATE, LATENCY = 50, 0.05
GROUPS = ("latency-bound", "rate-limited", "cpu-bound", "memory")


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str  # its first word is the group --only selects
    records: int
    page_size: int
    workers: int
    demo: tuple[str, ...]
    ideal: float | None = None
    baselines: bool = True
    warm_up: bool = True  # fetch every page once first, so the server's record cache is full

    @property
    def pages(self) -> int:
        return math.ceil(self.records / self.page_size)


@dataclass(frozen=True, kw_only=True)
class Row:
    scenario: Scenario
    client: str
    seconds: float  # as the client reports it: start-up excluded
    process: float
    records: int
    cpu: float
    rss_mb: float
    requests: int
    throttled: int

    @property
    def per_second(self) -> float:
        return self.records / self.seconds


def scenarios(quick: bool, header_styles: list[str]) -> list[Scenario]:
    n = 10 if quick else 1
    latency = Scenario(
        name="latency-bound",
        records=20_000 // n,
        page_size=100,
        workers=16,
        demo=("--latency", str(LATENCY)),
    )
    limited = Scenario(
        name="rate-limited",
        records=100_000 // n,
        page_size=100,
        workers=16,
        demo=("--rate-limit", str(RATE), "--latency", str(LATENCY)),
        warm_up=False,  # it would cost pages / rate seconds; the limit dominates anyway
    )
    headers = [
        Scenario(
            name=f"rate-limited {style}",
            records=limited.records,
            page_size=100,
            workers=16,
            demo=(*limited.demo, "--rate-limit-headers", style),
            ideal=limited.pages / RATE,
            baselines=False,
            warm_up=False,
        )
        for style in header_styles
    ]
    bulk = ("--latency", "0", "--max-page-size", "1000")
    cpu = Scenario(name="cpu-bound", records=200_000 // n, page_size=1000, workers=8, demo=bulk)
    memory = [
        Scenario(
            name=f"memory {records // 1000}k",
            records=records,
            page_size=1000,
            workers=16,
            demo=bulk,
            baselines=False,
        )
        for records in (100_000 // n, 1_000_000 // n)
    ]
    return [
        replace(latency, ideal=latency.pages * LATENCY / latency.workers),
        replace(limited, ideal=limited.pages / RATE),
        *headers,
        cpu,
        *memory,
    ]


class ClientFailed(Exception):
    pass


def run_harvester(s: Scenario, url: str, folder: Path, timeout: float) -> Row:
    out, config, stats = folder / "harvest.jsonl", folder / "config.json", folder / "stats.json"
    raw = demo_config(url, out, workers=s.workers, page_size=s.page_size)
    config.write_bytes(orjson.dumps(raw))  # JSON is YAML
    stats.unlink(missing_ok=True)
    command = [sys.executable, "-m", "harvester", str(config), "--stats-json", str(stats)]
    command += ["--progress", "none", "--log-level", "ERROR", "--workers", str(s.workers)]
    run = measure(command, timeout=timeout)
    summary = orjson.loads(stats.read_bytes()) if stats.exists() else {}
    if run.exit_code != 0:
        raise ClientFailed(f"exit code {run.exit_code}: {summary.get('error')}")
    check_lines(out, s.records)
    return Row(
        scenario=s,
        client="harvester",
        seconds=summary["elapsed_seconds"],
        process=run.seconds,
        records=summary["records"],
        cpu=run.cpu,
        rss_mb=run.rss_mb,
        requests=summary["requests"],
        throttled=summary["statuses"].get("429", 0),
    )


def run_baseline(client: str, s: Scenario, url: str, folder: Path, timeout: float) -> Row:
    out = folder / f"{client}.jsonl"
    command = [sys.executable, CLIENTS_PY, client, "--url", url, "--records", str(s.records)]
    command += ["--page-size", str(s.page_size), "--workers", str(s.workers), "--out", str(out)]
    run = measure(command, timeout=timeout)
    if run.exit_code != 0:
        raise ClientFailed(f"exit code {run.exit_code}")
    result = orjson.loads(run.stdout.splitlines()[-1])
    if client == "sequential":
        check_lines(out, s.records)
    return Row(
        scenario=s,
        client=client,
        seconds=result["seconds"],
        process=run.seconds,
        records=result["records"],
        cpu=run.cpu,
        rss_mb=run.rss_mb,
        requests=result["requests"],
        throttled=result["429s"],
    )


def check_lines(path: Path, records: int) -> None:
    lines = count_lines(path)
    path.unlink()
    if lines != records:
        raise ClientFailed(f"{lines:,} lines written, {records:,} expected")


def run_scenario(
    s: Scenario, folder: Path, timeout: float, notes: list[str]
) -> tuple[list[Row], float | None]:
    """The scenario's rows, and for cpu-bound the floor's CPU seconds per record."""
    rows: list[Row] = []
    bodies: list[bytes] = []
    clients = ["probe", "harvester", "sequential"] if s.baselines else ["harvester"]
    options = ["--port", "0", "--quiet", "--records", str(s.records), *s.demo]
    with demo_process(options) as url:
        if s.warm_up:  # cpu-bound keeps the bodies for the floor
            keep = s.name == "cpu-bound"
            bodies = asyncio.run(get_pages(url, s.records, s.page_size, 16, keep=keep))[1]
        for client in clients:
            time.sleep(1.0)  # lets a rate limiter's bucket fill up again between clients
            try:
                if client == "harvester":
                    rows.append(run_harvester(s, url, folder, timeout))
                else:
                    rows.append(run_baseline(client, s, url, folder, timeout))
            except (ClientFailed, TimeoutError) as error:
                notes.append(f"{s.name} / {client}: FAILED: {error}")
    if not bodies:
        return rows, None
    floor = min(floor_cpu(bodies, folder / "floor.jsonl") for _ in range(3))
    return rows, floor / s.records


def print_table(rows: list[Row]) -> None:
    print(
        f"{'scenario':<18} {'client':<10} {'wall s':>8} {'proc s':>7} {'records/s':>10} "
        f"{'CPU s':>7} {'RSS MB':>7} {'requests':>8} {'429s':>6} {'x ideal':>7}"
    )
    for r in rows:
        ideal = f"{r.seconds / r.scenario.ideal:7.2f}" if r.scenario.ideal else f"{'':7}"
        print(
            f"{r.scenario.name:<18} {r.client:<10} {r.seconds:8.2f} {r.process:7.2f} "
            f"{r.per_second:10,.0f} {r.cpu:7.2f} {r.rss_mb:7.1f} {r.requests:8,} "
            f"{r.throttled:6,} {ideal}"
        )


def print_targets(rows: list[Row], floor: float | None, startup: float) -> None:
    found = {(r.scenario.name, r.client): r for r in rows}
    lines: list[tuple[str, str, bool]] = []
    harvester, probe = (
        found.get(("latency-bound", "harvester")),
        found.get(("latency-bound", "probe")),
    )
    if harvester and probe:
        ratio = harvester.per_second / probe.per_second
        lines.append(("latency-bound: harvester >= 0.9x probe", f"{ratio:.2f}x", ratio >= 0.9))
    for r in rows:
        if r.scenario.name.startswith("rate-limited") and r.client == "harvester":
            sustained = r.scenario.pages / r.seconds / RATE
            share = r.throttled / r.requests
            what = f"{r.scenario.name}: >= 90% of limit, < 2% 429s"
            shown = f"{sustained:.0%} of limit, {share:.1%} 429s"
            lines.append((what, shown, sustained >= 0.9 and share < 0.02))
    cpu = found.get(("cpu-bound", "harvester"))
    if cpu and floor:
        # The floor runs in a warm interpreter, so harvester's start-up CPU (the interpreter and
        # its imports, as `--version` costs) is left out of the comparison; raw is shown too.
        raw, work = cpu.cpu / cpu.records / floor, (cpu.cpu - startup) / cpu.records / floor
        what = "cpu-bound: harvester CPU <= 2x floor"
        shown = f"{work:.2f}x (raw {raw:.2f}x; floor {floor * 1e6:.2f} us/record)"
        lines.append((what, shown, work <= 2))
    memory = [r for r in rows if r.scenario.name.startswith("memory")]
    if len(memory) == 2:
        small, large = memory
        ratio = large.rss_mb / small.rss_mb
        shown = f"{large.rss_mb:.0f} / {small.rss_mb:.0f} MB = {ratio:.2f}"
        what = f"memory: RSS {large.scenario.name} <= 1.10x {small.scenario.name}"
        lines.append((what, shown, ratio <= 1.10))
    print("\ntargets")
    for what, shown, met in lines:
        print(f"  {what:<48} {shown:<44} {'met' if met else 'MISSED'}")


def print_rate_limits(rows: list[Row]) -> None:
    limited = [r for r in rows if r.scenario.name.startswith("rate-limited")]
    if limited:
        print(f"\nrate limit {RATE}/s: share of the limit sustained, share of requests refused")
    for r in limited:
        sustained = r.scenario.pages / r.seconds / RATE
        share = r.throttled / r.requests
        print(f"  {r.scenario.name:<18} {r.client:<10} {sustained:6.0%} {share:7.1%}")


def demo_options() -> str:
    command = [sys.executable, "-m", "harvester.demo", "--help"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every scenario ~10x smaller")
    parser.add_argument("--only", choices=GROUPS, help="run one scenario")
    args = parser.parse_args()

    styles = ["x", "ietf"] if "--rate-limit-headers" in demo_options() else []
    chosen = [s for s in scenarios(args.quick, styles) if args.only in (None, s.name.split()[0])]
    timeout = 60.0 if args.quick else 300.0
    rows: list[Row] = []
    notes: list[str] = []
    floor = None
    startup = 0.0
    if any(s.name == "cpu-bound" for s in chosen):
        startup = startup_cpu([sys.executable, "-m", "harvester", "--version"])
    with tempfile.TemporaryDirectory() as tmp:
        for s in chosen:
            print(f"running {s.name} ({s.records:,} records, pages of {s.page_size})", flush=True)
            scenario_rows, scenario_floor = run_scenario(s, Path(tmp), timeout, notes)
            rows += scenario_rows
            floor = scenario_floor or floor
    print()
    print_table(rows)
    print_rate_limits(rows)
    print_targets(rows, floor, startup)
    if startup:
        print(f"  (harvester start-up alone, `--version`: {startup:.2f} CPU s)")
    if not styles:
        notes.append("the demo API has no --rate-limit-headers: those rate-limited runs skipped")
    if args.quick:
        notes.append("--quick: start-up and first requests dominate; the targets mean little")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
