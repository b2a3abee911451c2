"""How rate_matrix.py runs things: the limiter server, harvester, the sequential client, tune.

Every child process has a timeout and the server is stopped in a `finally`; every harvest's
output is checked record by record, so that a fast but incomplete run never counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

HERE = Path(__file__).parent
SERVER_PY = str(HERE / "limiter_server.py")
SEQUENTIAL_PY = str(HERE / "sequential_client.py")
READY = "listening on "
STOP_GRACE = 15.0  # seconds a timed-out client gets to stop after SIGTERM (harvester needs 5)


@contextlib.contextmanager
def limiter_server(options: Sequence[str], log: Path) -> Iterator[str]:
    """Start limiter_server.py with `options`; yield its base URL; stop it on exit."""
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, SERVER_PY, *options], stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 30)
            line = process.stdout.readline() if ready else ""
            if not line.startswith(READY):
                raise RuntimeError(f"the limiter server did not start: {log.read_text()[-500:]}")
            yield line[len(READY) :].strip()
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def reset(url: str) -> None:
    """A fresh limiter and fresh counters on the server."""
    request = urllib.request.Request(f"{url}/_reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
        answer.read()


def served(url: str) -> dict[str, Any]:
    """What the server served since the last reset (limiter_server.Session.stats)."""
    with urllib.request.urlopen(f"{url}/_stats", timeout=10) as answer:  # noqa: S310 (loopback)
        stats: dict[str, Any] = orjson.loads(answer.read())
        return stats


@dataclass(kw_only=True)
class Run:
    """One client's run against a fresh limiter: its process and what the server saw."""

    client: str
    exit_code: int | None  # None: killed at its timeout
    wall: float  # the process, start-up included
    server: dict[str, Any]  # limiter_server's stats: ok, refused, requests, span, timeline
    records: int = 0  # records checked in its output
    complete: bool = False
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)  # harvester's --stats-json

    @property
    def span(self) -> float:
        """Seconds from the first request the server saw to the last answer it sent."""
        return float(self.server.get("span") or 0.0)

    @property
    def ok_per_second(self) -> float:
        return self.server.get("ok", 0) / self.span if self.span else 0.0

    @property
    def refused_share(self) -> float:
        made = self.server.get("requests", 0)
        return self.server.get("refused", 0) / made if made else 0.0

    def summary(self) -> dict[str, Any]:
        document = {k: v for k, v in self.__dict__.items() if k != "stats"}
        keep = ("requests", "statuses", "retries", "cool_downs", "cool_down_seconds")
        keep += ("rate_limit", "concurrency_limit", "elapsed_seconds", "warnings")
        document["harvester_stats"] = {k: self.stats[k] for k in keep if k in self.stats}
        return document


def harvest_config(
    url: str, out: Path, *, page_size: int, workers: int = 16, **sections: dict[str, Any]
) -> dict[str, Any]:
    """A harvester config for the limiter server: auth none, offset pages, no rate_limit."""
    config: dict[str, Any] = {
        "source": {"url": f"{url}/items", "records": "items"},
        "auth": {"type": "none"},
        "pagination": {"style": "offset", "page_size": page_size},
        "concurrency": {"workers": workers},
        "output": {"path": str(out)},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def run_harvester(
    url: str,
    folder: Path,
    config: dict[str, Any],
    *,
    records: int,
    timeout: float,
    tree: Path | None = None,
) -> Run:
    """`python -m harvester cfg.yaml` against a fresh limiter; its output checked."""
    out = Path(config["output"]["path"])
    for stale in folder.glob(f"{out.name}*"):
        stale.unlink()
    path, stats_path = folder / "cfg.yaml", folder / "stats.json"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    stats_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "harvester", str(path), "--stats-json", str(stats_path)]
    command += ["--progress", "none", "--log-level", "INFO"]
    reset(url)
    code, wall, log = _timed(
        command, folder / "harvester.log", timeout, env=tree_env(tree), cwd=folder
    )
    stats = orjson.loads(stats_path.read_bytes()) if stats_path.exists() else {}
    run = Run(client="harvester", exit_code=code, wall=wall, server=served(url), stats=stats)
    if code is None:
        run.error = f"killed after {timeout:.0f} s"
    elif code != 0:
        run.error = stats.get("error") or log
    run.records, run.complete = check_records(out, records)
    if code == 0 and not run.complete:
        run.error = f"exit 0 but {run.records:,} of {records:,} records in order"
    return run


def run_sequential(url: str, folder: Path, *, page_size: int, records: int, timeout: float) -> Run:
    """The sequential requests client against a fresh limiter; its output checked."""
    out = folder / "sequential.jsonl"
    out.unlink(missing_ok=True)
    command = [sys.executable, SEQUENTIAL_PY, "--url", url, "--page-size", str(page_size)]
    command += ["--out", str(out)]
    reset(url)
    code, wall, log = _timed(command, folder / "sequential.log", timeout)
    run = Run(client="sequential", exit_code=code, wall=wall, server=served(url))
    if code is None:
        run.error = f"killed after {timeout:.0f} s"
    elif code != 0:
        run.error = log
    run.records, run.complete = check_records(out, records)
    return run


def tree_env(tree: Path | None) -> dict[str, str] | None:
    """The environment that makes `python -m harvester` run the package under `tree` (a
    checkout or `git archive` of another commit) instead of the installed one. The command
    must not run in the checkout: `-m` puts the working directory first on sys.path."""
    return None if tree is None else {**os.environ, "PYTHONPATH": str(tree.resolve())}


def _timed(
    command: list[str],
    log: Path,
    timeout: float,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int | None, float, str]:
    """Run `command`, stderr to `log`: exit code (None if killed), wall seconds, last line."""
    started = time.perf_counter()
    with log.open("w") as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=errors, env=env, cwd=cwd
        )
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM first: harvester stops gracefully and still writes its --stats-json.
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            code = None
        except BaseException:  # the matrix itself stopped (SIGTERM, Ctrl-C): no orphan left
            process.kill()
            process.wait()
            raise
    wall = time.perf_counter() - started
    lines = log.read_text(errors="replace").strip().splitlines()
    return code, wall, lines[-1][:300] if lines else ""


def check_records(path: Path, records: int) -> tuple[int, bool]:
    """How many records lead `path` with ids 0, 1, 2, ... in order; and whether all are there."""
    if not path.exists():
        return 0, False
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            if orjson.loads(line).get("id") != count:
                break
            count += 1
        else:
            return count, count == records
    return count, False


def calibrate(url: str, in_flight: int, page_size: int, requests: int) -> float:
    """2xx per second of exactly `in_flight` aiohttp workers, never refused: a concurrency
    limit's true rate on this machine, over `requests` pages."""
    reset(url)
    asyncio.run(_fetch_pages(url, in_flight, page_size, requests))
    stats = served(url)
    if stats["refused"]:
        raise RuntimeError(f"calibration at {in_flight} in flight drew {stats['refused']} refusals")
    return float(stats["ok"] / stats["span"])


async def _fetch_pages(url: str, workers: int, page_size: int, requests: int) -> None:
    todo = iter(range(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as session:

        async def worker() -> None:
            for page in todo:
                params = {"offset": page * page_size, "limit": page_size}
                async with session.get(f"{url}/items", params=params) as answer:
                    await answer.read()

        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())


@dataclass(kw_only=True)
class Tuned:
    """`harvester tune`'s advice, as it printed it."""

    exit_code: int | None
    wall: float
    workers: int | None = None
    rate_limit: float | None = None
    output: str = ""


_RECOMMENDED = re.compile(r"recommended: workers (\d+)(?: and rate_limit ([\d.]+))?")


def run_tune(
    url: str,
    folder: Path,
    config: dict[str, Any],
    *,
    duration: float,
    max_workers: int,
    tree: Path | None = None,
) -> Tuned:
    """`harvester tune cfg.yaml` against a fresh limiter; its recommendation parsed."""
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "harvester", "tune", str(path)]
    command += ["--duration", f"{duration:g}", "--max-workers", str(max_workers)]
    reset(url)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=duration + 90,
            check=False,
            env=tree_env(tree),
            cwd=folder,
        )
    except subprocess.TimeoutExpired:
        return Tuned(exit_code=None, wall=time.perf_counter() - started)
    tuned = Tuned(
        exit_code=done.returncode,
        wall=time.perf_counter() - started,
        output=done.stdout + done.stderr[-500:],
    )
    found = _RECOMMENDED.search(done.stdout)
    if found:
        tuned.workers = int(found.group(1))
        tuned.rate_limit = float(found.group(2)) if found.group(2) else None
    return tuned
