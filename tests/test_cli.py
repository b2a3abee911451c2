"""The command line as users run it: a real process, real configs, the demo API on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from harvester.demo import DemoServer, DemoSettings, expected_records, run_demo

from .conftest import CliResult, run_cli

SECRET = "s3cr3t-VALUE-9f2c"


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    async with run_demo(DemoSettings(records=1_000, client_secret=SECRET)) as server:
        yield server


def write_config(folder: Path, url: str, **changes: Any) -> Path:
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


def assert_one_clear_line(result: CliResult, *needles: str) -> None:
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def lines(path: Path) -> list[Any]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_harvests_the_demo_api(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url)
    stats_path = tmp_path / "stats.json"
    result = await run_cli(str(config), "--stats-json", str(stats_path), "--log-level=DEBUG")
    assert result.code == 0, result.stderr
    assert lines(tmp_path / "out" / "items.jsonl") == expected_records(1_000)
    assert "records      1,000" in result.stdout
    stats = orjson.loads(stats_path.read_bytes())
    assert (stats["exit_code"], stats["records"], stats["pages"]) == (0, 1_000, 20)
    assert stats["token_requests"] == 1
    assert SECRET not in result.output and SECRET not in stats_path.read_text()


async def test_options_override_the_config(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url)
    out = tmp_path / "sample.jsonl"
    result = await run_cli(str(config), "--output", str(out), "--max-records=120", "--workers=2")
    assert result.code == 0, result.stderr
    assert lines(out) == expected_records(120)
    assert not (tmp_path / "out" / "items.jsonl").exists()


async def test_a_secret_from_the_environment_never_shows(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url, auth__client_secret="${MY_SECRET}")
    env = {"MY_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    result = await run_cli(str(config), "--log-level=DEBUG", "--debug", env=env)
    assert result.code == 0, result.stderr
    assert SECRET not in result.output


async def test_wrong_credentials_fail_with_the_oauth_error(
    demo: DemoServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, demo.url, auth__client_secret="wrong")
    result = await run_cli(str(config))
    assert result.code == 1
    assert_one_clear_line(result, "invalid_client", "/oauth2/token", "status=401")
    assert not (tmp_path / "out" / "items.jsonl").exists()


async def test_an_unreachable_token_url_fails_with_the_url(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, f"http://127.0.0.1:{port}")
    result = await run_cli(str(config))
    assert result.code == 1
    assert_one_clear_line(result, f"127.0.0.1:{port}/oauth2/token", "connection")


async def test_a_wrong_records_path_names_it_and_the_keys(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url, source__records="data")
    result = await run_cli(str(config))
    assert result.code == 1
    assert_one_clear_line(result, "'data'", "items")


async def test_a_404_fails_with_status_and_url(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url, source__url=f"{demo.url}/nothing-here")
    result = await run_cli(str(config))
    assert result.code == 1
    assert_one_clear_line(result, "status 404", "/nothing-here")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            "source: {url: http://x/items}\noutput: {path: o.jsonl}\nconcurency: {}\n",
            ["concurency", "did you mean 'concurrency'"],
        ),
        (
            "source: {url: http://x/items}\noutput: {path: o.jsonl}\n"
            "concurrency: {workers: many}\n",
            ["concurrency.workers", "must be a number"],
        ),
        (
            "source: {url: http://x/items}\noutput: {path: o.jsonl}\n"
            "auth: {type: bearer, token: '${NOPE_NOT_SET}'}\n",
            ["auth.token", "NOPE_NOT_SET"],
        ),
        ("source: {url: http://x/items\noutput: o\n", ["config.yaml:2:7", "malformed YAML"]),
        ("source: {url: http://x/items}\n", ["output", "is required"]),
    ],
)
async def test_bad_config_exits_2_with_the_key_path(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    result = await run_cli(str(config))
    assert result.code == 2
    assert_one_clear_line(result, "config.yaml", *needles)


async def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = await run_cli(str(tmp_path / "nope.yaml"))
    assert result.code == 2
    assert_one_clear_line(result, "nope.yaml", "cannot read")


async def test_bad_options_exit_2(tmp_path: Path) -> None:
    result = await run_cli("config.yaml", "--workers", "0")
    assert result.code == 2
    assert "--workers" in result.stderr and "Traceback" not in result.stderr


async def test_print_config_shows_the_resolved_config_with_secrets_masked(
    demo: DemoServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, demo.url, auth__client_secret="${MY_SECRET}")
    env = {"MY_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    result = await run_cli(
        str(config), "--print-config", "--workers=3", "--output=x.jsonl", env=env
    )
    assert result.code == 0, result.stderr
    assert SECRET not in result.output and result.stderr == ""
    shown = yaml.safe_load(result.stdout)
    assert shown["auth"]["client_secret"] == "***"
    assert shown["concurrency"]["workers"] == 3 and shown["output"]["path"] == "x.jsonl"
    assert shown["retry"]["max_retry_after"] == 600.0  # defaults filled in
    assert shown["tls"] == {"verify": True, "ca_bundle": None}
    assert demo.stats.token_requests == demo.stats.data_requests == 0  # nothing was sent
    assert not (tmp_path / "x.jsonl").exists()


async def test_print_config_of_a_bad_config_is_the_usual_one_line_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", pagination__page_size=0)
    result = await run_cli(str(config), "--print-config")
    assert result.code == 2 and result.stdout == ""
    assert_one_clear_line(result, "config.yaml", "pagination.page_size")


async def test_plain_http_to_another_host_is_refused_before_any_request(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://api.invalid")
    result = await run_cli(str(config))
    assert result.code == 2
    assert_one_clear_line(result, "auth.token_url", "plain http", "auth.allow_insecure_http")
