"""Core benchmark: 20,000 records in pages of 100 at 50 ms latency, against the ideal time.

    python benchmarks/bench_core.py [--records 20000] [--latency 0.05] [--workers 16] [--runs 3]

The demo API runs in a process of its own on loopback. Ideal = pages x latency / workers: what a
harvest would take if every request cost only the server's latency and every worker were always
busy. The harvest's elapsed time runs from the first token request to the atomic rename; the
whole CLI process (Python start-up included) is timed as well.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from common import check_output, demo_config, harvest

from harvester.demo.launch import demo_process


def harvest_in_process(raw: dict[str, Any]) -> float:
    return harvest(raw).elapsed


def harvest_cli(raw: dict[str, Any], folder: Path) -> float:
    path = folder / "bench.yaml"
    path.write_bytes(orjson.dumps(raw))  # JSON is YAML
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "harvester",
            str(path),
            "--progress",
            "none",
            "--log-level",
            "ERROR",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sequential", action="store_true", help="also time 1 worker")
    args = parser.parse_args()

    pages = math.ceil(args.records / args.page_size)
    ideal = pages * args.latency / args.workers
    demo = [
        "--port",
        "0",
        "--quiet",
        "--records",
        str(args.records),
        "--latency",
        str(args.latency),
    ]
    rows: list[tuple[str, float]] = []
    with demo_process(demo) as url, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = folder / "items.jsonl"
        raw = demo_config(url, out, workers=args.workers, page_size=args.page_size)
        harvest_in_process(raw)  # warm-up: imports, first connections
        times = [harvest_in_process(raw) for _ in range(args.runs)]
        check_output(out, args.records)
        rows.append(
            (f"harvest, {args.workers} workers (median of {args.runs})", statistics.median(times))
        )
        rows.append((f"harvest, {args.workers} workers (best)", min(times)))
        rows.append((f"CLI process, {args.workers} workers", harvest_cli(raw, folder)))
        check_output(out, args.records)
        if args.sequential:
            one = demo_config(url, out, workers=1, page_size=args.page_size)
            rows.append(("harvest, 1 worker (sequential)", harvest_in_process(one)))

    print(
        f"{args.records:,} records, {pages} pages of {args.page_size}, "
        f"{args.latency * 1000:.0f} ms latency; ideal = {pages} x {args.latency} s / "
        f"{args.workers} = {ideal:.3f} s"
    )
    print(f"{'run':<44} {'seconds':>8} {'x ideal':>8} {'records/s':>10}")
    for name, seconds in rows:
        ratio = seconds / ideal
        print(f"{name:<44} {seconds:>8.3f} {ratio:>8.2f} {args.records / seconds:>10,.0f}")


if __name__ == "__main__":
    main()
