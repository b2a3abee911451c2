"""The command line as users run it: a real process, real configs, the demo API on loopback."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from harvester.demo import DemoServer, expected_records
from harvester.errors import OutputError
from harvester.output import OutputLock

from .conftest import SECRET, assert_one_clear_line, run_cli, write_config


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
    assert shown["tls"] == {"verify": True, "ca_bundle": None} | {
        key: None for key in ("client_cert", "client_key", "client_key_password")
    }
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


async def test_stats_json_dash_is_stdout_and_refused_when_stdout_holds_the_records(
    demo: DemoServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, demo.url)
    result = await run_cli(str(config), "--stats-json", "-", "--quiet")
    assert result.code == 0, result.stderr
    assert orjson.loads(result.stdout)["records"] == 1_000
    assert not (tmp_path / "-").exists()
    mixed = await run_cli(str(config), "--stats-json", "-", "--output", "-")
    assert mixed.code == 2
    assert_one_clear_line(mixed, "--stats-json", "stdout carries the records")


async def test_an_output_path_that_is_a_folder_is_named_as_it_was_given(
    demo: DemoServer, tmp_path: Path
) -> None:
    folder = tmp_path / "out" / "items.jsonl"
    folder.mkdir(parents=True)
    result = await run_cli(str(write_config(tmp_path, demo.url)))
    assert result.code != 0
    line = assert_one_clear_line(result, f"output {folder}: is a folder, not a file")
    assert ".part" not in line
    assert demo.stats.data_requests == 0


def test_a_folder_this_user_cannot_write_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: Any, **kwargs: Any) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    lock = OutputLock(tmp_path / "items.jsonl", warn=print)
    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(OutputError) as caught, lock:
        pass
    assert str(caught.value) == (
        f"output {tmp_path / 'items.jsonl'}: cannot write in its folder {tmp_path}: Permission "
        "denied; choose an output.path in a folder this user can write, or change its permissions"
    )
