"""Shards on distinct addresses against an API that limits per client address.

    python benchmarks/bench_shards.py [--quick] [--shards 1,2,4] [--scope shard|run]

The demo API runs with --rate-limit-per-address: RATE requests/s for each client source address,
LATENCY seconds per request. For each N it serves N x RATE x SECONDS pages (so that every run
lasts about SECONDS), and N harvester processes run at once: shard K (`--shard K/N
--concurrent-shards N`, `concurrency.scope: shard`, `rate_limit: RATE`) with
`source.local_address: ${SHARD_ADDRESS}` set to 127.0.0.{K+2} (Linux routes all of 127/8 to
loopback). Then `harvester merge CONFIG --shards N`. The reference is one unsharded run of the
same dataset against a demo API without a limit: the merged file must have its sha256.

req/s: data requests the demo answered, divided by the span from the first shard's token request
(its exit time less its elapsed_seconds) to the last shard's exit; Python's start-up is left out,
the teardown after the last write is not. spread: from the first shard's token request to the
last's (start-ups sharing the cores), part of the span. x single: req/s / (N x the req/s of
N = 1), the target >= 0.9. x limit: req/s / (N x RATE); the bucket's first burst (RATE requests)
can put it over 1. With --scope run each shard gets RATE / N instead: the whole run keeps to one
address's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from common import check_output, demo_config, served

from harvester.demo.launch import demo_process

RATE, LATENCY, PAGE_SIZE, WORKERS = 20.0, 0.02, 100, 8
ADDRESS_VARIABLE = "SHARD_ADDRESS"


@dataclass(frozen=True, kw_only=True)
class Row:
    shards: int
    records: int
    pages: int
    requests: int  # data requests the demo answered, its 429s included
    throttled: int
    span: float
    spread: float
    by_address: dict[str, int]
    same_bytes: bool

    @property
    def per_second(self) -> float:
        return self.requests / self.span


def address(shard: int) -> str:
    return f"127.0.0.{shard + 2}"


def write_config(url: str, folder: Path, *, scope: str) -> Path:
    """folder/config.json (JSON is YAML), writing folder/out/data.jsonl from ${SHARD_ADDRESS}."""
    raw: dict[str, Any] = demo_config(url, folder / "out" / "data.jsonl", workers=WORKERS)
    raw["pagination"].update(style="offset", page_size=PAGE_SIZE, total="body:total")
    raw["source"]["local_address"] = f"${{{ADDRESS_VARIABLE}}}"
    raw["concurrency"].update(rate_limit=RATE, scope=scope)
    path = folder / "config.json"
    path.write_bytes(orjson.dumps(raw))
    return path


async def run_shard(config: Path, shard: int, count: int, stats: Path) -> tuple[float, float]:
    """Shard `shard` of `count` from its own address: (its exit time, its elapsed_seconds)."""
    command = [sys.executable, "-m", "harvester", str(config), "--shard", f"{shard}/{count}"]
    command += ["--concurrent-shards", str(count), "--stats-json", str(stats), "-q"]
    env = {**os.environ, ADDRESS_VARIABLE: address(shard)}
    process = await asyncio.create_subprocess_exec(*command, env=env)
    code = await process.wait()
    ended = time.monotonic()
    summary = orjson.loads(stats.read_bytes()) if stats.exists() else {}
    if code != 0:
        raise SystemExit(f"FAILED: shard {shard}/{count}: exit {code}: {summary.get('error')}")
    return ended, float(summary["elapsed_seconds"])


async def run_shards(config: Path, count: int) -> tuple[float, float]:
    """All `count` shards at once: the span from the first's token request to the last's exit,
    and the spread of their token requests (start-ups fighting for the cores)."""
    stats = [config.with_name(f"stats-{k}.json") for k in range(count)]
    ends = await asyncio.gather(*(run_shard(config, k, count, stats[k]) for k in range(count)))
    starts = [end - elapsed for end, elapsed in ends]
    return max(end for end, _ in ends) - min(starts), max(starts) - min(starts)


def merge(config: Path, count: int) -> None:
    command = [sys.executable, "-m", "harvester", "merge", str(config), "--shards", str(count)]
    # The config's ${SHARD_ADDRESS} must expand for the merge too, though it connects nowhere.
    env = {**os.environ, ADDRESS_VARIABLE: "127.0.0.1"}
    done = asyncio.run(_call(command, env))
    if done != 0:
        raise SystemExit(f"FAILED: harvester merge exited {done}")


async def _call(command: list[str], env: dict[str, str]) -> int:
    process = await asyncio.create_subprocess_exec(*command, env=env)
    return await process.wait()


def reference_digest(records: int, folder: Path) -> str:
    """sha256 of one unsharded run of the same dataset, against a demo API without a limit."""
    options = ["--port", "0", "--quiet", "--records", str(records), "--latency", str(LATENCY)]
    out = folder / "reference.jsonl"
    with demo_process(options) as url:
        raw = demo_config(url, out, workers=16)
        raw["pagination"].update(style="offset", page_size=PAGE_SIZE, total="body:total")
        config = folder / "reference.json"
        config.write_bytes(orjson.dumps(raw))
        command = [sys.executable, "-m", "harvester", str(config), "-q"]
        done = asyncio.run(_call(command, dict(os.environ)))
    if done != 0:
        raise SystemExit(f"FAILED: the reference run exited {done}")
    return sha256(out)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def run_count(count: int, seconds: float, scope: str, folder: Path) -> Row:
    pages = round(count * RATE * seconds)
    records = pages * PAGE_SIZE
    print(f"running N = {count}: {records:,} records", flush=True)
    folder.mkdir()
    reference = reference_digest(records, folder)
    options = ["--port", "0", "--quiet", "--records", str(records), "--latency", str(LATENCY)]
    options += ["--rate-limit", f"{RATE:g}", "--rate-limit-per-address"]
    with demo_process(options) as url:
        config = write_config(url, folder, scope=scope)
        span, spread = asyncio.run(run_shards(config, count))
        answered = served(url)
    merge(config, count)
    merged = folder / "out" / "data.jsonl"
    check_output(merged, records)
    left = sorted(p.name for p in merged.parent.iterdir() if p != merged)
    if left:
        raise SystemExit(f"FAILED: left beside the merged file: {', '.join(left)}")
    return Row(
        shards=count,
        records=records,
        pages=pages,
        requests=answered["data_requests"],
        throttled=answered["statuses"].get("429", 0),
        span=span,
        spread=spread,
        by_address=answered["clients"],
        same_bytes=sha256(merged) == reference,
    )


def print_table(rows: list[Row], scope: str) -> None:
    single = next((r.per_second for r in rows if r.shards == 1), None)
    print(
        f"\nscope: {scope}, {RATE:g} req/s per address, {LATENCY * 1000:g} ms latency, "
        f"pages of {PAGE_SIZE}, {WORKERS} workers per shard"
    )
    print(
        f"{'N':>2} {'records':>8} {'requests':>8} {'429s':>5} {'span s':>7} {'spread':>6} "
        f"{'req/s':>7} {'x single':>8} {'x limit':>7} {'merged = one run':>16}  requests by address"
    )
    met = True
    for r in rows:
        ratio = r.per_second / (r.shards * single) if single else None
        limit = r.per_second / (r.shards * RATE)
        met = met and (ratio is None or ratio >= 0.9)
        shown = f"{ratio:8.2f}" if ratio is not None else f"{'':8}"
        addresses = ", ".join(f"{a} {n}" for a, n in sorted(r.by_address.items()))
        print(
            f"{r.shards:>2} {r.records:>8,} {r.requests:>8,} {r.throttled:>5,} {r.span:7.2f} "
            f"{r.spread:6.2f} "
            f"{r.per_second:7.1f} {shown} {limit:7.2f} {'yes' if r.same_bytes else 'NO':>16}  "
            f"{addresses}"
        )
    if single is None:
        print("note: no N = 1 run, so no x single")
    if scope == "shard":
        print(f"\ntarget: x single >= 0.9 for every N: {'met' if met else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="runs of ~3 s instead of ~10 s")
    parser.add_argument("--shards", default="1,2,4", help="the values of N, comma-separated")
    parser.add_argument(
        "--scope", choices=("shard", "run"), default="shard", help="concurrency.scope"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.shards.split(",")]
    if any(not 1 <= n <= 250 for n in counts):
        parser.error("--shards: each N from 1 to 250 (one loopback address per shard)")
    seconds = 3.0 if args.quick else 10.0
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            rows.append(run_count(count, seconds, args.scope, Path(tmp) / f"n{count}"))
    print_table(rows, args.scope)
    if args.quick:
        print("note: --quick: start-up and the first burst weigh more; the target means less")
    if not all(r.same_bytes for r in rows):
        sys.exit("FAILED: a merged file differs from one unsharded run's")


if __name__ == "__main__":
    main()
