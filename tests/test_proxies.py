"""Proxies: the environment as requests reads it, source.proxy and auth.proxy, through a real
proxy server (proxy.py) on loopback in front of the demo API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harvester.demo import DemoSettings, run_demo
from tests.conftest import SECRET, expected_bytes, run_cli, write_config
from tests.proxy_server import run_proxy

RECORDS = 200  # four pages of 50


def _environment(**proxies: str) -> dict[str, str]:
    """This process's environment without any proxy variable, and then `proxies`: nothing the
    machine running the tests has set may route (or bypass) a request."""
    keep = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return {**keep, **proxies}


async def test_http_proxy_from_the_environment(tmp_path: Path) -> None:
    async with (
        run_demo(DemoSettings(records=RECORDS, client_secret=SECRET)) as demo,
        run_proxy(tmp_path) as proxy,
    ):
        config = write_config(tmp_path, demo.url)
        result = await run_cli(str(config), env=_environment(HTTP_PROXY=proxy.url))
        assert result.code == 0, result.output
        forwarded = await proxy.settled(demo.url)
        print(forwarded, demo.stats.as_dict())
    assert (tmp_path / "out" / "items.jsonl").read_bytes() == expected_bytes(RECORDS)
