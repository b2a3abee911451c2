"""The sequential baseline of rate_matrix.py: one page after another with `requests`.

    python benchmarks/sequential_client.py --url BASE --page-size P --out PATH

The loop a user writes, or gets from dlt's REST client: no auth (the limiter server has none),
offset pages until the total the first page announced, json.loads, one json.dumps line per
record. A 429, a 503 or another 5xx is asked again after its Retry-After (seconds or an
HTTP-date), or without one after an exponential backoff from 1 s, capped at 30 s (dlt's
defaults, with no limit on attempts: the matrix bounds the process instead).
Unlike clients.py's `sequential`, it reads every Retry-After variant and needs no token.

It prints one JSON line: {"seconds", "requests", "refused", "records"}, where seconds run from
the first request to the last page (process start-up excluded).
"""

from __future__ import annotations

import argparse
import email.utils
import json
import time
from pathlib import Path
from typing import Any

import requests

MAX_BACKOFF = 30.0


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After value (delta-seconds or HTTP-date); None if absent or bad."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def harvest(url: str, page_size: int, out: Path) -> dict[str, Any]:
    session = requests.Session()
    started = time.perf_counter()
    made = refused = written = offset = failures = 0
    total = 1  # until the first page says otherwise
    with out.open("w") as handle:
        while offset < total:
            answer = session.get(
                f"{url}/items", params={"offset": offset, "limit": page_size}, timeout=30
            )
            made += 1
            if answer.status_code == 429 or answer.status_code >= 500:
                refused += 1
                failures += 1
                wait = retry_after_seconds(answer.headers.get("Retry-After"))
                if wait is None:
                    wait = min(MAX_BACKOFF, 2.0 ** (failures - 1))
                time.sleep(wait)
                continue
            answer.raise_for_status()
            failures = 0
            page = json.loads(answer.text)
            for record in page["items"]:
                handle.write(json.dumps(record) + "\n")
                written += 1
            total = page["total"]
            offset += page_size
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "requests": made, "refused": refused, "records": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the limiter server's base URL")
    parser.add_argument("--page-size", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON Lines")
    args = parser.parse_args()
    print(json.dumps(harvest(args.url, args.page_size, args.out)), flush=True)


if __name__ == "__main__":
    main()
