"""The Python API's memory: iter_records() and stream() stay flat, whatever the dataset's size.

    python benchmarks/bench_api.py [--records 100000,1000000]

For each record count, in a fresh process against the demo API (its own process, pages of
1,000, 8 workers, warmed by one harvest first): iter_records() read by a loop that only counts,
stream() the same, and harvest() into JSON Lines for comparison; records/s, CPU seconds and
peak RSS of the harvesting process. Exits 1 if a count is wrong, or if the peak RSS of
iter_records() or stream() at the largest count is over 1.1x that at the smallest.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harvester.demo.launch import demo_process  # noqa: E402

WAYS = ("iter_records", "stream", "harvest")


def config(url: str, out: Path) -> dict[str, Any]:
    return {
        "source": {"url": f"{url}/items", "records": "items"},
        "auth": {
            "type": "client_credentials",
            "token_url": f"{url}/oauth2/token",
            "client_id": "demo",
            "client_secret": "demo-secret",
        },
        "pagination": {"page_size": 1_000},
        "concurrency": {"workers": 8},
        "output": {"path": str(out)},
    }


def measure(way: str, url: str, out: Path, results: Any) -> None:
    """In a fresh process: harvest one way; (records, seconds, CPU seconds, peak RSS MiB)."""
    import harvester

    started, cpu = time.perf_counter(), time.process_time()
    settings = config(url, out)
    count = 0
    if way == "iter_records":
        for _ in harvester.iter_records(settings, progress=False):
            count += 1
    elif way == "stream":

        async def counted() -> int:
            seen = 0
            async for _ in harvester.stream(settings, progress=False):
                seen += 1
            return seen

        count = asyncio.run(counted())
    else:  # harvest, warm-up
        count = harvester.harvest(settings, progress=False, fresh=True).records
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.put((count, seconds, cpu, peak))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default="100000,1000000")
    args = parser.parse_args()
    counts = [int(n) for n in args.records.split(",")]
    context = multiprocessing.get_context("spawn")
    peaks: dict[tuple[str, int], float] = {}
    failed = False
    print(f"{'way':<14}{'records':>10}{'records/s':>12}{'CPU s':>8}{'peak RSS':>11}")
    for count in counts:
        with demo_process(["--records", str(count), "--port", "0"]) as url:
            # The demo API encodes each record once, on first use: warm it, or the first way
            # measured pays for that.
            for way in ("warm-up", *WAYS):
                with tempfile.TemporaryDirectory() as folder:
                    results = context.Queue()
                    process = context.Process(
                        target=measure, args=(way, url, Path(folder) / "items.jsonl", results)
                    )
                    process.start()
                    got, seconds, cpu, peak = results.get()
                    process.join()
                if way == "warm-up":
                    continue
                failed |= got != count
                peaks[way, count] = peak
                rate = got / seconds
                print(f"{way:<14}{got:>10,}{rate:>12,.0f}{cpu:>8.1f}{peak:>8.0f} MiB")
    for way in ("iter_records", "stream"):
        ratio = peaks[way, counts[-1]] / peaks[way, counts[0]]
        print(f"{way}: peak RSS at {counts[-1]:,} is {ratio:.2f}x that at {counts[0]:,}")
        failed |= ratio > 1.1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
