"""Skewed shards on Ray against even ones, side by side: one rate for all goes where the work is.

    .venv/bin/python benchmarks/bench_ray.py [--rate 50] [--rounds 3]      (needs the ray extra)

The demo API limits at --rate requests/s (2 s tokens). Four Ray tasks sharing one token actor and
one rate actor harvest the same 1,400 records each way: skewed (one task with 140 pages, three
with 20) and even (four with 50), in alternating rounds. Reported: each run's span (first task's
start to last task's end), the ratio skewed / even (issue 15: within 1.2), token requests, 429s,
and what a rate divided four ways would take at the least (the big task alone: 140 / (rate/4)).
Ratios, not absolute times: the machine is shared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

try:
    from harvester.engines import ray as engine
except ImportError:
    sys.exit("bench_ray needs the ray extra: pip install 'harvester[ray]'")

from common import demo_config, served

from harvester.config import Config, parse_config
from harvester.demo.launch import demo_process

RECORDS = 1_400


def configs(url: str, folder: Path, page_sizes: list[int], rate: float) -> list[Config]:
    found = []
    for k, size in enumerate(page_sizes):
        raw = demo_config(url, folder / f"out-{k}.jsonl", workers=4, page_size=size)
        raw["concurrency"]["rate_limit"] = rate
        found.append(parse_config(raw, environ={}))
    return found


def one_run(url: str, page_sizes: list[int], rate: float) -> dict[str, float]:
    before = served(url)
    with tempfile.TemporaryDirectory() as folder:
        jobs = [engine.Job(c) for c in configs(url, Path(folder), page_sizes, rate)]
        report = engine.run_jobs(jobs, concurrent=len(jobs))
    after = served(url)
    if report.exit_code:
        raise SystemExit(f"a task failed: {[o.error for o in report.outcomes if o.error]}")
    spans = [o.finished - o.started for o in report.outcomes]
    start = min(o.started for o in report.outcomes)
    return {
        "span": max(o.finished for o in report.outcomes) - start,
        "longest task": max(spans),
        "requests": after["data_requests"] - before["data_requests"],
        "429": after["statuses"].get("429", 0) - before["statuses"].get("429", 0),
        "tokens": after["token_requests"] - before["token_requests"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    options = ["--port", "0", "--records", str(RECORDS), "--rate-limit", str(args.rate)]
    engine.start(None, cpus=4)
    rows = []
    try:
        with demo_process([*options, "--token-lifetime", "2"]) as url:
            one_run(url, [28, 28, 28, 28], args.rate)  # Ray's worker processes start: not timed
            for _ in range(args.rounds):
                skewed = one_run(url, [10, 70, 70, 70], args.rate)
                even = one_run(url, [28, 28, 28, 28], args.rate)
                rows.append((skewed, even))
    finally:
        engine.stop()
    static = 140 / (args.rate / 4)
    print(f"\n4 Ray tasks, one token and one rate ({args.rate:g}/s), 1,400 records each way")
    print("| round | skewed s | even s | skewed / even | requests | 429s | token requests |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ratios = []
    for k, (skewed, even) in enumerate(rows, 1):
        ratio = skewed["span"] / even["span"]
        ratios.append(ratio)
        requests = f"{skewed['requests']:.0f} / {even['requests']:.0f}"
        refused = f"{skewed['429']:.0f} / {even['429']:.0f}"
        tokens = f"{skewed['tokens']:.0f} / {even['tokens']:.0f}"
        print(
            f"| {k} | {skewed['span']:.2f} | {even['span']:.2f} | {ratio:.2f} | {requests} | "
            f"{refused} | {tokens} |"
        )
    worst = max(ratios)
    print(f"\nskewed / even at worst {worst:.2f} (target <= 1.2); a rate divided four ways would")
    print(f"take at least {static:.1f} s for the big task alone")
    return 0 if worst <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
