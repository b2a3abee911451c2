"""Shared fixtures: zero-wait retry policy, aioresponses that works with aiohttp 3.14, configs."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import sys
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import ClientResponse
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core
from hypothesis import settings

from harvester.config import Config, RetryConfig, parse_config
from harvester.demo import DemoServer, DemoSettings, expected_records, run_demo
from harvester.retry import RetryPolicy

# CI (.ci/run) tries the same examples on every run: a rare case found there would turn a clean
# clone red at random, whatever the change. Every other run of the suite explores new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("HARVESTER_CI"):
    settings.load_profile("ci")

# A suite started in the background by a shell without job control (`make test &`, nohup)
# inherits SIGINT ignored, and harvester rightly leaves an ignored Ctrl-C ignored: the tests of
# Ctrl-C would fail, and so would the scripts they start, which inherit it too. The suite is
# run with Ctrl-C as a terminal gives it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# aiohttp 3.14 added a required `stream_writer` to ClientResponse; aioresponses 0.7.9 (the newest)
# does not pass it (pnuckowski/aioresponses#289). The response it builds has been "sent" already,
# so all the writer has to give is the size of what went out.
_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters


class _CompatResponse(ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        if _NEEDS_STREAM_WRITER:
            kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mock_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses, for tests where the exact sequence of answers matters."""
    monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)
    with aioresponses() as mocked:
        yield mocked


class FakeTime:
    """A clock that moves only when something sleeps on it: waits cost no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> CliResult:
    """`python -m harvester ARGS` as a subprocess the event loop waits on, so that a demo API
    running in this process keeps serving."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "harvester",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()  # a hung harvester must not outlive the test
        await process.wait()
        raise
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())


SECRET = "s3cr3t-VALUE-9f2c"
HANG = 60.0  # seconds after which an in-process harvest in a test counts as hung


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    """The demo API with 1,000 records, its client secret SECRET (write_config's)."""
    async with run_demo(DemoSettings(records=1_000, client_secret=SECRET)) as server:
        yield server


def write_config(folder: Path, url: str, **changes: Any) -> Path:
    """folder/config.yaml for the demo API at `url`, writing folder/out/items.jsonl; each change
    `section__key=value` sets one key. Two attempts per request, no backoff."""
    raw: dict[str, Any] = {
        "source": {"url": f"{url}/items", "records": "items"},
        "auth": {
            "type": "client_credentials",
            "token_url": f"{url}/oauth2/token",
            "client_id": "demo",
            "client_secret": SECRET,
            "scope": "read",
        },
        "pagination": {"style": "offset", "page_size": 50},
        "concurrency": {"workers": 4},
        "retry": {"max_attempts": 2, "initial_backoff": 0, "max_backoff": 0},
        "output": {"path": str(folder / "out" / "items.jsonl")},
    }
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw[section][key] = value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def assert_one_clear_line(result: CliResult, *needles: str) -> str:
    """The one ERROR line on stderr, after checking it holds every needle, that no traceback
    shows and that SECRET appears nowhere."""
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def harvester_logging() -> Iterator[None]:
    """The harvester and asyncio loggers as they were before cli.main set them up in this
    process."""
    loggers = [logging.getLogger(name) for name in ("harvester", "asyncio")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers[:], lg.propagate = handlers, propagate
        lg.setLevel(level)


def no_wait_policy(**retry: Any) -> RetryPolicy:
    """A retry policy that never sleeps; the number of attempts as in `retry`."""
    waits = {"initial_backoff": 0.0, "max_backoff": 0.0, "max_retry_after": 3600.0}

    async def no_sleep(seconds: float) -> None:
        return None

    return RetryPolicy(RetryConfig(**{**waits, **retry}), sleep=no_sleep)


def expected_bytes(count: int, first: int = 0) -> bytes:
    """The demo API's records first..first+count-1 as harvester writes them."""
    return b"".join(orjson.dumps(r) + b"\n" for r in expected_records(first + count)[first:])


def faulty_demo(records: int, **changes: Any) -> DemoSettings:
    """Demo settings with every kind of fault on: 5xx, drops, truncated bodies, 429s, 2 s tokens."""
    faults: dict[str, Any] = {
        "fault_rate": 0.03,
        "drop_rate": 0.01,
        "truncate_rate": 0.01,
        "throttle_rate": 0.02,
        "retry_after": 0,
        "token_lifetime": 2.0,
    }
    return DemoSettings(records=records, **{**faults, **changes})


def make_config(base_url: str, out: Path, **sections: dict[str, Any]) -> Config:
    """A config for the demo API at `base_url`, writing to `out`; `sections` merge over it."""
    return parse_config(raw_config(base_url, out, **sections), environ={})


def write_config_file(folder: Path, base_url: str, **sections: dict[str, Any]) -> Path:
    """`make_config`'s config as folder/config.yaml, writing to folder/out.jsonl, for the CLI."""
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw_config(base_url, folder / "out.jsonl", **sections)))
    return path


def raw_config(base_url: str, out: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "source": {"url": f"{base_url}/items", "records": "items", "timeout": 10},
        "auth": {
            "type": "client_credentials",
            "token_url": f"{base_url}/oauth2/token",
            "client_id": "demo",
            "client_secret": "demo-secret",
            "scope": "read",
        },
        "pagination": {"style": "offset", "page_size": 100, "total": "body:total"},
        "concurrency": {"workers": 8, "max_buffered_pages": 32},
        "retry": {"max_attempts": 8, "initial_backoff": 0, "max_backoff": 0},
        "output": {"path": str(out)},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return raw
