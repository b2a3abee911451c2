"""A CPU-bound harvest beside an earlier commit: 200,000 records, pages of 1,000, no latency.

    python benchmarks/bench_cpu.py [--against 08c1b07] [--records 200000] [--rounds 5]

With no latency the harvest is bound by harvester's own work per record (reading JSON, checking
numbers, writing JSON Lines), which is what an exact-values change could slow down. The earlier
commit (default: 08c1b07, the last before issue 9 made every value exact) is checked out in a
temporary git worktree; both trees harvest the same demo API process in alternating rounds, each
in a fresh Python process, so that a noisy machine hits both alike. Reported: each tree's median
harvest time and CPU time, and their ratios (this tree / the earlier one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
from common import check_output, demo_config

from harvester.demo.launch import demo_process

ROOT = Path(__file__).resolve().parent.parent

# Run in the child, with PYTHONPATH naming the tree under test.
CHILD = """
import asyncio, resource, sys
import orjson
import harvester
from harvester.config import parse_config
from harvester.runner import run
stats = asyncio.run(run(parse_config(orjson.loads(sys.argv[1]), environ={})))
usage = resource.getrusage(resource.RUSAGE_SELF)
# Peak RSS of this process's own memory: VmHWM. ru_maxrss would also count the parent's size at
# the fork, which Linux carries over the exec.
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(orjson.dumps({"elapsed": stats.elapsed, "cpu": usage.ru_utime + usage.ru_stime,
                    "records": stats.records, "rss_kib": int(peak[0].split()[1]) if peak else 0,
                    "package": harvester.__file__}).decode())
"""


def harvest_with(tree: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """One harvest by the harvester package in `tree`, in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, orjson.dumps(raw).decode()],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
        cwd=tree,
    )
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    if not result["package"].startswith(str(tree)):
        raise SystemExit(f"FAILED: {tree} ran harvester from {result['package']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="08c1b07", help="the earlier commit")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.against],
            check=True,
            capture_output=True,
        )
        try:
            trees = {"this tree": ROOT, f"{args.against}": base}
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
            options = ["--records", str(args.records), "--max-page-size", str(args.page_size)]
            with demo_process(options) as url:
                for round_ in range(args.rounds + 1):  # round 0 warms caches, not counted
                    order = list(trees.items())
                    if round_ % 2:
                        order.reverse()
                    for name, tree in order:
                        out = Path(folder) / f"{name.replace(' ', '-')}.jsonl"
                        raw = demo_config(url, out, workers=args.workers, page_size=args.page_size)
                        result = harvest_with(tree, raw)
                        check_output(out, args.records)
                        out.unlink()
                        if round_:
                            runs[name].append(result)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                check=False,
                capture_output=True,
            )

    print(
        f"CPU-bound harvest: {args.records:,} records, pages of {args.page_size:,}, no latency, "
        f"{args.workers} workers, {args.rounds} alternating rounds (medians)"
    )
    medians = {
        name: (
            statistics.median(r["elapsed"] for r in results),
            statistics.median(r["cpu"] for r in results),
        )
        for name, results in runs.items()
    }
    for name, (elapsed, cpu) in medians.items():
        print(f"  {name:12} harvest {elapsed:6.2f} s   CPU {cpu:6.2f} s")
    (mine_elapsed, mine_cpu), (base_elapsed, base_cpu) = medians.values()
    print(
        f"  ratio        harvest {mine_elapsed / base_elapsed:6.2f}     "
        f"CPU {mine_cpu / base_cpu:6.2f}    (this tree / {args.against}; <= 1 is no slower)"
    )


if __name__ == "__main__":
    main()
