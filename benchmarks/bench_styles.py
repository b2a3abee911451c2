"""Pagination styles at 50 ms latency: partitioned vs sequential cursor, and unknown totals.

    python benchmarks/bench_styles.py [--records 20000] [--latency 0.05] [--parts 8]

The demo API runs in a process of its own on loopback. For each style: wall time of the harvest
(token request to rename), the requests the server answered, and for unknown totals the pages
fetched ahead past the end and thrown away. The partitioned cursor harvest is compared with the
sequential one (target: a speed-up of at least 0.7 x parts).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

from common import check_output, demo_config, harvest, id_partition, served_requests

from harvester.demo.launch import demo_process


def scenarios(records: int, parts: int) -> list[tuple[str, str, dict[str, Any]]]:
    cursor = {"style": "cursor", "next_cursor": "body:next_cursor"}
    partition = id_partition(records, parts)
    return [
        ("offset, total in body", "/items", {"style": "offset", "total": "body:total"}),
        ("offset, total unknown", "/stream", {"style": "offset", "total": "unknown"}),
        ("page, total_pages", "/pages", {"style": "page", "total_pages": "body:total_pages"}),
        ("page, total unknown (404 ends)", "/pages", {"style": "page", "total": "unknown"}),
        ("cursor, sequential", "/cursor", cursor),
        (f"cursor, {parts} windows", "/cursor", {**cursor, "partition": partition}),
        ("link, sequential", "/link", {"style": "link", "next_url": "body:next"}),
        (
            f"link, {parts} windows",
            "/link",
            {"style": "link", "next_url": "body:next", "partition": partition},
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    pages = math.ceil(args.records / 100)
    demo = ["--port=0", "--quiet", f"--records={args.records}", f"--latency={args.latency}"]
    results: dict[str, float] = {}
    print(f"{args.records:,} records in pages of 100, {args.latency * 1000:.0f} ms latency")
    print(f"{'style':<32} {'seconds':>8} {'requests':>9} {'needed':>7} {'discarded':>10}")
    with demo_process(demo) as url, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        harvest(demo_config(url, out, workers=args.workers, style="offset"))  # warm-up
        for name, path, pagination in scenarios(args.records, args.parts):
            raw = demo_config(url, out, path=path, workers=args.workers, **pagination)
            before = served_requests(url)
            stats = harvest(raw)
            served = served_requests(url) - before
            check_output(out, args.records)
            results[name] = stats.elapsed
            # Unknown totals need one more page when the last one is full: the empty one.
            needed = pages + (1 if "unknown" in name and args.records % 100 == 0 else 0)
            print(
                f"{name:<32} {stats.elapsed:>8.3f} {served:>9} {needed:>7} "
                f"{stats.discarded_pages:>10}"
            )
    sequential, parallel = results["cursor, sequential"], results[f"cursor, {args.parts} windows"]
    speedup = sequential / parallel
    target = 0.7 * args.parts
    verdict = "meets" if speedup >= target else "MISSES"
    print(
        f"partitioned cursor speed-up: {sequential:.2f} s / {parallel:.2f} s = {speedup:.2f}x "
        f"({verdict} the target of 0.7 x {args.parts} = {target:.1f}x)"
    )


if __name__ == "__main__":
    main()
