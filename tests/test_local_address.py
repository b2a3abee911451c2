"""source.local_address: a harvest's connections leave from the address it names.

Linux routes all of 127.0.0.0/8 to loopback, so a harvest bound to 127.0.0.2 reaches the demo API
listening on 127.0.0.1, which sees the request come from 127.0.0.2.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from harvester.config import parse_config
from harvester.config.resources import parse_resources
from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.errors import ConfigError
from tests.conftest import (
    SECRET,
    assert_one_clear_line,
    expected_bytes,
    raw_config,
    run_cli,
    write_config,
)
from tests.proxy_server import ProxyServer, run_proxy

RECORDS = 200  # 4 pages of 50


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    async with run_demo(DemoSettings(records=RECORDS, client_secret=SECRET)) as server:
        yield server


def _environment(**proxies: str) -> dict[str, str]:
    """This process's environment without any proxy variable, then `proxies`."""
    keep = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return {**keep, **proxies}


async def test_the_harvest_reaches_the_api_from_the_local_address(
    tmp_path: Path, demo: DemoServer
) -> None:
    config = write_config(tmp_path, demo.url, source__local_address="127.0.0.2")
    result = await run_cli(str(config), env=_environment())
    assert result.code == 0, result.output
    assert (tmp_path / "out" / "items.jsonl").read_bytes() == expected_bytes(RECORDS)
    assert demo.stats.clients == {"127.0.0.2": 4}


async def test_through_a_proxy_the_connection_to_the_proxy_leaves_from_it(
    tmp_path: Path, demo: DemoServer
) -> None:
    async with run_proxy(tmp_path) as proxy:
        config = write_config(tmp_path, demo.url, source__local_address="127.0.0.3")
        result = await run_cli(str(config), env=_environment(HTTP_PROXY=proxy.url))
        assert result.code == 0, result.output
        await proxy.settled(demo.url)
    assert _clients_of_the_proxy(proxy) == {
        ("POST", "127.0.0.3"),  # the token request shares the session
        ("GET", "127.0.0.3"),
    }
    assert demo.stats.data_requests == 4  # the proxy's own connections: not harvester's to bind


def _clients_of_the_proxy(proxy: ProxyServer) -> set[tuple[str, str]]:
    """(method, client address) of each request the proxy forwarded, its settle marker aside."""
    found = (re.search(r"FORWARDED (\S+) (\S+) .* client=(\S+)", line) for line in proxy.log)
    return {(m[1], m[3]) for m in found if m is not None and "marker=" not in m[2]}


@pytest.mark.parametrize("address", ["127.0.0.300", "localhost", "", "10.0.0.0/8"])
def test_a_bad_local_address_names_the_key(tmp_path: Path, address: str) -> None:
    raw = raw_config("http://127.0.0.1:9", tmp_path / "out.jsonl")
    raw["source"]["local_address"] = address
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, environ={})
    assert caught.value.key == "source.local_address"
    assert caught.value.exit_code == 2


def test_left_out_the_system_chooses(tmp_path: Path) -> None:
    config = parse_config(raw_config("http://127.0.0.1:9", tmp_path / "out.jsonl"), environ={})
    assert config.source.local_address is None


async def test_the_cli_says_in_one_line_which_key_is_wrong(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", source__local_address="my-laptop")
    result = await run_cli(str(config))
    assert result.code == 2
    assert_one_clear_line(result, "source.local_address", "my-laptop")


def test_resources_share_one_local_address_as_they_share_one_session() -> None:
    source = {"records": "items", "local_address": "127.0.0.2"}
    raw: dict[str, Any] = {
        "defaults": {"auth": {"type": "none"}, "source": source},
        "resources": [
            {"name": n, "source": {"url": f"http://127.0.0.1:9/{n}"}, "output": {"path": n}}
            for n in ("users", "orders")
        ],
    }
    users, orders = parse_resources(raw, environ={})
    assert users.source.local_address == orders.source.local_address == "127.0.0.2"
    raw["resources"][1]["source"]["local_address"] = "127.0.0.3"
    with pytest.raises(ConfigError) as caught:
        parse_resources(raw, environ={})
    assert caught.value.key == "resources[1].source.local_address"
