"""Baseline clients for bench_limits.py, and how it measures a client process.

    python benchmarks/clients.py sequential|probe --url BASE --records N --page-size P
                                 [--workers W] --out PATH

sequential: the loop a beginner writes with `requests`: one token, then one page after another,
json.loads, one json.dumps line per record; on 429 it sleeps Retry-After and asks again.
probe: the bare transport limit: aiohttp, W workers GETting every page of /items and throwing
the bodies away; a 429 is counted and asked again after its Retry-After.

Each prints one JSON line at the end: {"seconds", "requests", "429s", "records"}, where seconds
run from the token request to the last page (process start-up excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

CLIENT_ID, CLIENT_SECRET = "demo", "demo-secret"
# By hand: aiohttp 3.14 deprecates BasicAuth, and the id and secret need no form-encoding.
BASIC = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()


def page_url(url: str, offset: int, page_size: int) -> str:
    return f"{url}/items?offset={offset}&limit={page_size}"


def sequential(url: str, page_size: int, out: Path) -> dict[str, Any]:
    """One page after another until the total the first page announced."""
    try:
        import requests
    except ImportError:
        raise SystemExit(
            "the sequential client needs `requests`: pip install requests (or the dev extras)"
        ) from None
    started = time.perf_counter()
    session = requests.Session()
    answer = session.post(
        f"{url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=30,
    )
    answer.raise_for_status()
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    made = throttled = written = offset = 0
    total = 1  # until the first page says otherwise
    with out.open("w") as handle:
        while offset < total:
            answer = session.get(page_url(url, offset, page_size), headers=headers, timeout=30)
            made += 1
            if answer.status_code == 429:
                throttled += 1
                time.sleep(float(answer.headers["Retry-After"]))
                continue
            answer.raise_for_status()
            page = json.loads(answer.text)
            for record in page["items"]:
                handle.write(json.dumps(record) + "\n")
                written += 1
            total = page["total"]
            offset += page_size
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "requests": made, "429s": throttled, "records": written}


async def fetch_token(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(
        f"{url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {BASIC}"},
    ) as answer:
        answer.raise_for_status()
        return str((await answer.json())["access_token"])


async def get_pages(
    url: str, records: int, page_size: int, workers: int, *, keep: bool
) -> tuple[dict[str, int], list[bytes]]:
    """GET every page with `workers` in parallel: the counts, and the bodies if `keep`."""
    pages = math.ceil(records / page_size)
    counts = {"requests": 0, "429s": 0}
    bodies: list[bytes] = [b""] * pages if keep else []
    todo = iter(range(pages))  # shared by the workers: each next() hands out one page
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"Authorization": f"Bearer {await fetch_token(session, url)}"}

        async def worker() -> None:
            for page in todo:
                while True:
                    target = page_url(url, page * page_size, page_size)
                    async with session.get(target, headers=headers) as answer:
                        counts["requests"] += 1
                        body = await answer.read()
                        if answer.status != 429:
                            answer.raise_for_status()
                            break
                        counts["429s"] += 1
                        wait = float(answer.headers["Retry-After"])
                    await asyncio.sleep(wait)
                if keep:
                    bodies[page] = body

        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
    return counts, bodies


def probe(url: str, records: int, page_size: int, workers: int) -> dict[str, Any]:
    started = time.perf_counter()
    counts, _ = asyncio.run(get_pages(url, records, page_size, workers, keep=False))
    seconds = time.perf_counter() - started
    pages = math.ceil(records / page_size)
    return {"seconds": seconds, **counts, "records": pages * page_size}


def floor_cpu(bodies: list[bytes], out: Path) -> float:
    """CPU seconds to parse every body and write its records as JSON Lines: no HTTP at all."""
    started = time.process_time()
    with out.open("wb") as handle:
        for body in bodies:
            items = orjson.loads(body)["items"]
            lines = [orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE) for record in items]
            handle.write(b"".join(lines))
    return time.process_time() - started


@dataclass(frozen=True, kw_only=True)
class Measured:
    """One finished child process: its wall time, CPU, peak RSS and stdout."""

    seconds: float
    cpu: float
    rss_mb: float
    exit_code: int
    stdout: str


# A child's ru_maxrss starts at its parent's peak RSS (Linux carries the old address space's
# high-water mark over exec), so a client spawned straight from the benchmark would report the
# benchmark's memory. This small Python spawns it instead and reports its rusage from wait4.
_WRAPPER = """
import os, signal, sys, time
result, timeout, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
started = time.perf_counter()
pid = os.posix_spawn(command[0], command, os.environ)
signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
signal.alarm(timeout)
_, status, usage = os.wait4(pid, 0)
signal.alarm(0)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
with open(result, "w") as out:
    out.write(f"{seconds} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss} {code}")
"""


def measure(command: list[str], *, timeout: float) -> Measured:
    """Run `command` (killed after `timeout` s): its wall time, CPU, peak RSS and stdout."""
    with tempfile.TemporaryDirectory() as tmp:
        result, stdout = Path(tmp) / "rusage", Path(tmp) / "stdout"
        wrapper = [sys.executable, "-S", "-c", _WRAPPER, str(result), str(math.ceil(timeout))]
        with stdout.open("w") as handle:
            subprocess.run([*wrapper, *command], stdout=handle, timeout=timeout + 30, check=True)
        seconds, cpu, rss_kib, code = result.read_text().split()
        if int(code) == -signal.SIGKILL:
            raise TimeoutError(f"{' '.join(command[:4])} ... still running after {timeout} s")
        return Measured(
            seconds=float(seconds),
            cpu=float(cpu),
            rss_mb=int(rss_kib) / 1024,  # KiB on Linux
            exit_code=int(code),
            stdout=stdout.read_text(),
        )


def startup_cpu(command: list[str], *, runs: int = 3) -> float:
    """The least CPU seconds `command` (one that starts and exits at once) took in `runs`."""
    return min(measure(command, timeout=60).cpu for _ in range(runs))


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=["sequential", "probe"])
    parser.add_argument("--url", required=True, help="the demo API's base URL")
    parser.add_argument("--records", type=int, required=True, help="the probe plans from it")
    parser.add_argument("--page-size", type=int, required=True)
    parser.add_argument("--workers", type=int, default=16, help="probe only")
    parser.add_argument("--out", type=Path, required=True, help="sequential only: JSON Lines")
    args = parser.parse_args()
    if args.client == "sequential":
        result = sequential(args.url, args.page_size, args.out)
    else:
        result = probe(args.url, args.records, args.page_size, args.workers)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
