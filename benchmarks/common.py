"""What the benchmark scripts share: configs for the demo API, output checks, a harvest timer."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from harvester.config import parse_config
from harvester.runner import run
from harvester.stats import Stats


def demo_config(
    url: str, out: Path, *, path: str = "/items", workers: int = 16, **pagination: Any
) -> dict[str, Any]:
    """A config for the demo API at `url`; `pagination` keys go into the pagination section."""
    records = {"/items": "items", "/stream": "items", "/cursor": "data", "/link": "results"}
    records["/changes"] = "data"
    return {
        "source": {"url": f"{url}{path}", "records": records.get(path, "results")},
        "auth": {
            "type": "client_credentials",
            "token_url": f"{url}/oauth2/token",
            "client_id": "demo",
            "client_secret": "demo-secret",
        },
        "pagination": {"page_size": 100, **pagination},
        "concurrency": {"workers": workers, "max_buffered_pages": workers * 4},
        "output": {"path": str(out)},
    }


def id_partition(records: int, parts: int) -> dict[str, Any]:
    """pagination.partition: the demo API's ids 0..records-1 in `parts` windows."""
    return dict(param_from="id_from", param_to="id_to", start=0, end=records, parts=parts)


def harvest(raw: dict[str, Any]) -> Stats:
    """Run one harvest in this process; its stats (elapsed: token request to rename)."""
    return asyncio.run(run(parse_config(raw, environ={})))


def served(url: str) -> dict[str, Any]:
    """What the demo API has served so far: its /_stats."""
    with urllib.request.urlopen(f"{url}/_stats", timeout=10) as answer:  # noqa: S310 (loopback)
        stats: dict[str, Any] = orjson.loads(answer.read())
        return stats


def served_requests(url: str) -> int:
    """How many data requests the demo API has answered so far."""
    return int(served(url)["data_requests"])


def check_output(path: Path, records: int) -> None:
    """Exit with a message unless `path` holds ids 0..records-1, each once, in order."""
    count = 0
    with path.open("rb") as handle:
        for expected, line in enumerate(handle):
            if orjson.loads(line)["id"] != expected:
                raise SystemExit(f"FAILED: record {expected} out of order or missing in {path}")
            count += 1
    if count != records:
        raise SystemExit(f"FAILED: {count} records written, {records} expected")
