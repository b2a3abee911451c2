"""Several resources and a parent -> child fan-out in one run, on one worker budget and one token.

    python benchmarks/bench_resources.py [--quick]

1. speed: 3 resources x 200 pages (offset, page numbers, Range) plus users -> orders, 1,000
   parents x 2 child pages, 50 ms latency, 16 workers in all. The ideal is every request at
   full concurrency: total requests x latency / workers (target: within 1.3x). Token
   requests, as the demo API counts them: once per token lifetime for the whole run; run
   twice, with a token that outlives the run and with 3 s tokens.
2. memory: the fan-out alone (no latency) with 1,000 and with 20,000 parents; the peak RSS
   (VmHWM, from wait4) of the harvester process must stay flat (target: within 10%).

The demo API runs in a process of its own on loopback; harvester runs as the CLI, a child
process, so that its RSS is its own.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import yaml
from clients import count_lines, measure
from common import served

from harvester.demo.launch import demo_process

LATENCY, WORKERS, ORDERS_PER_USER, ORDER_PAGE = 0.05, 16, 20, 10


def auth(url: str) -> dict[str, Any]:
    return {
        "type": "client_credentials",
        "token_url": f"{url}/oauth2/token",
        "client_id": "demo",
        "client_secret": "demo-secret",
    }


def fan_out(url: str, out: Path) -> list[dict[str, Any]]:
    return [
        {
            "name": "users",
            "source": {"url": f"{url}/users", "records": "items"},
            "pagination": {"style": "offset", "page_size": 100, "total": "body:total"},
            "output": {"path": str(out / "users.jsonl")},
        },
        {
            "name": "orders",
            "parent": "users",
            "source": {"url": f"{url}/users/{{users.id}}/orders", "records": "results"},
            "pagination": {
                "style": "page",
                "page_size": ORDER_PAGE,
                "page_param": "page",
                "page_size_param": "page_size",
                "first_page": 1,
                "total_pages": "body:total_pages",
            },
            "include_from_parent": ["id"],
            "output": {"path": str(out / "orders.jsonl")},
        },
    ]


def independent(url: str, out: Path) -> list[dict[str, Any]]:
    page = {"page_size": 100}
    return [
        {
            "name": "items",
            "source": {"url": f"{url}/items", "records": "items"},
            "pagination": {"style": "offset", "total": "body:total", **page},
            "output": {"path": str(out / "items.jsonl")},
        },
        {
            "name": "pages",
            "source": {"url": f"{url}/pages", "records": "results"},
            "pagination": {
                "style": "page",
                "page_param": "page",
                "page_size_param": "page_size",
                "first_page": 1,
                "total_pages": "body:total_pages",
                **page,
            },
            "output": {"path": str(out / "pages.jsonl")},
        },
        {
            "name": "range",
            "source": {"url": f"{url}/range-items", "records": ""},
            "pagination": {
                "style": "range",
                "range_unit": "items",
                "total": "content-range",
                **page,
            },
            "output": {"path": str(out / "range.jsonl")},
        },
    ]


def harvest(url: str, folder: Path, resources: list[dict[str, Any]]) -> tuple[dict[str, Any], Any]:
    """Run the CLI on `resources`; its --stats-json and its measurement (wall, RSS)."""
    document = {
        "defaults": {"auth": auth(url), "concurrency": {"workers": WORKERS}},
        "resources": resources,
    }
    config, stats = folder / "config.yaml", folder / "stats.json"
    config.write_text(yaml.safe_dump(document))
    command = [sys.executable, "-m", "harvester", str(config), "--progress", "none"]
    measured = measure([*command, "--stats-json", str(stats), "--quiet"], timeout=900)
    result: dict[str, Any] = orjson.loads(stats.read_bytes())
    if measured.exit_code != 0:
        raise SystemExit(f"FAILED: exit {measured.exit_code}: {result.get('error')}")
    return result, measured


def speed(parents: int, token_lifetime: float | None = None) -> None:
    options = ["--port", "0", "--latency", str(LATENCY), "--records", "20000"]
    if token_lifetime is not None:
        options += ["--token-lifetime", str(token_lifetime)]
    options += ["--users", str(parents), "--orders-fixed", str(ORDERS_PER_USER)]
    with demo_process(options) as url, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stats, _ = harvest(url, folder, independent(url, folder) + fan_out(url, folder))
        demo = served(url)
        requests = stats["requests"]
        ideal = requests * LATENCY / WORKERS
        wall = stats["elapsed_seconds"]
        orders = count_lines(folder / "orders.jsonl")
        if orders != parents * ORDERS_PER_USER:
            raise SystemExit(
                f"FAILED: {orders} orders written, {parents * ORDERS_PER_USER} expected"
            )
    print(
        f"speed: {requests:,} requests ({demo['data_requests']:,} served), {WORKERS} workers, "
        f"{LATENCY * 1000:.0f} ms latency"
    )
    for name, part in stats["resources"].items():
        print(f"  {name:<8} {part['requests']:>6,} requests {part['records']:>8,} records")
    print(f"  wall {wall:.2f} s; ideal {ideal:.2f} s; x ideal {wall / ideal:.2f} (target <= 1.3)")
    if token_lifetime is None:
        print(f"  token requests: {demo['token_requests']} (target: 1, the token outlives the run)")
    else:
        lifetimes = math.ceil(wall / token_lifetime)
        print(
            f"  token requests: {demo['token_requests']} with {token_lifetime:g} s tokens "
            f"(the run spans {lifetimes} lifetimes: one token each, shared by every resource)"
        )


def memory(parents: int) -> float:
    options = ["--port", "0", "--users", str(parents), "--orders-fixed", str(ORDERS_PER_USER)]
    with demo_process(options) as url, tempfile.TemporaryDirectory() as tmp:
        stats, measured = harvest(url, Path(tmp), fan_out(url, Path(tmp)))
    print(
        f"memory: {parents:>6,} parents, {stats['records']:>9,} records, "
        f"{stats['elapsed_seconds']:.1f} s, peak RSS {measured.rss_mb:.1f} MB"
    )
    return float(measured.rss_mb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 and 2,000 parents for memory")
    args = parser.parse_args()
    speed(1_000)
    speed(1_000, token_lifetime=3)
    small, large = (200, 2_000) if args.quick else (1_000, 20_000)
    low, high = memory(small), memory(large)
    print(f"  peak RSS {large:,} / {small:,} parents: {high / low:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
