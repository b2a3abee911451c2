"""The Python API: harvest() in a plain script, under a running loop, stopped by Ctrl-C; configs
from paths, mappings and hand-built Configs validated as YAML is; no secret in what it shows."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

import harvester
from harvester.api import progress_mode, resolve_config
from harvester.config import (
    AuthConfig,
    ConcurrencyConfig,
    Config,
    OutputConfig,
    PaginationConfig,
    RetryConfig,
    SourceConfig,
    load_config,
    parse_config,
)
from harvester.config.plain import validated
from harvester.config.resources import load_resources
from harvester.demo import DemoServer, DemoSettings
from harvester.errors import AuthError, ConfigError, Interrupted
from harvester.sink import part_path

from .api_helpers import demo_in_thread, finished, start_python
from .conftest import SECRET, expected_bytes, write_config

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))
RESUME_HINT = "call harvester.harvest() again with the same config to resume"


def output_of(folder: Path) -> Path:
    return folder / "out" / "items.jsonl"


# --- a plain script, a running loop --------------------------------------------------------


async def test_harvest_in_a_plain_script(demo: DemoServer, tmp_path: Path) -> None:
    write_config(tmp_path, demo.url)
    code = (
        "import harvester\n"
        "stats = harvester.harvest('config.yaml', workers=3, progress=False)\n"
        "print(stats.records, stats.pages)\n"
    )
    status, stdout, stderr = await finished(await start_python(code, tmp_path))
    assert status == 0, stderr
    assert stdout.split() == ["1000", "20"]
    assert output_of(tmp_path).read_bytes() == expected_bytes(1_000)
    assert "Traceback" not in stderr


async def test_harvest_and_harvest_async_inside_a_running_loop(tmp_path: Path) -> None:
    # This coroutine's loop is running: harvest() blocks it, so the API answers from a thread.
    with demo_in_thread(DemoSettings(records=1_000, client_secret=SECRET)) as demo:
        config = write_config(tmp_path, demo.url)
        stats = harvester.harvest(config, progress=False)
        assert stats.records == 1_000
        again = await harvester.harvest_async(
            config, output=tmp_path / "again.jsonl", progress=False
        )
    assert again.records == 1_000
    assert output_of(tmp_path).read_bytes() == expected_bytes(1_000)
    assert (tmp_path / "again.jsonl").read_bytes() == expected_bytes(1_000)


def test_harvest_from_a_coroutine_that_asyncio_run_runs(tmp_path: Path) -> None:
    with demo_in_thread(DemoSettings(records=300, client_secret=SECRET)) as demo:
        config = write_config(tmp_path, demo.url)

        async def main() -> int:
            return harvester.harvest(config, progress=False, max_records=120).records

        assert asyncio.run(main()) == 120
    assert output_of(tmp_path).read_bytes() == expected_bytes(120)


# --- Ctrl-C and the notebook's interrupt ----------------------------------------------------


async def test_keyboard_interrupt_under_a_running_loop_stops_gracefully_and_resumes(
    tmp_path: Path,
) -> None:
    settings = DemoSettings(records=5_000, client_secret=SECRET, latency=0.02)
    with demo_in_thread(settings) as demo:
        config = write_config(
            tmp_path, demo.url, concurrency__workers=2, concurrency__stop_grace=60
        )
        # The kernel's interrupt is a SIGINT: KeyboardInterrupt in the thread that waits.
        main = threading.main_thread().ident
        assert main is not None
        demo.after_requests(10).add_done_callback(
            lambda _: signal.pthread_kill(main, signal.SIGINT)
        )
        with pytest.raises(Interrupted) as caught:
            harvester.harvest(config, progress=False)
        message = str(caught.value)
        assert "stopped by KeyboardInterrupt" in message and RESUME_HINT in message, message
        assert f"records are safe in {part_path(output_of(tmp_path))}" in message
        assert Path(f"{output_of(tmp_path)}.checkpoint").exists()
        assert not output_of(tmp_path).exists()
        stats = harvester.harvest(config, progress=False)
    assert 0 < stats.resumed_records < 5_000
    assert output_of(tmp_path).read_bytes() == expected_bytes(5_000)


async def test_ctrl_c_in_a_plain_script_stops_gracefully_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    from harvester.demo import run_demo

    async with run_demo(DemoSettings(records=5_000, client_secret=SECRET, latency=0.02)) as demo:
        config = write_config(
            tmp_path, demo.url, concurrency__workers=2, concurrency__stop_grace=60
        )
        code = (
            "import harvester, sys\n"
            "try:\n"
            "    harvester.harvest('config.yaml', progress=False)\n"
            "except harvester.Interrupted as exc:\n"
            "    print(exc)\n"
            "    sys.exit(130)\n"
        )
        process = await start_python(code, tmp_path)
        await demo.wait_for_requests(10)
        process.send_signal(signal.SIGINT)
        status, stdout, stderr = await finished(process)
        assert status == 130, stderr
        assert "stopped by KeyboardInterrupt" in stdout and RESUME_HINT in stdout, stdout
        assert "Traceback" not in stderr and "CancelledError" not in stderr
        stats = await harvester.harvest_async(config, progress=False)
    assert stats.resumed_records > 0
    assert output_of(tmp_path).read_bytes() == expected_bytes(5_000)


async def test_a_fresh_run_stopped_says_to_resume_without_fresh(tmp_path: Path) -> None:
    with demo_in_thread(DemoSettings(records=3_000, client_secret=SECRET, latency=0.02)) as demo:
        config = write_config(tmp_path, demo.url, concurrency__workers=2)
        stop = harvester.Stop(grace=60)
        with pytest.raises(Interrupted) as caught:
            await harvester.harvest_async(
                config, fresh=True, progress=False, stop=_stop_after(stop, demo, 5)
            )
    assert "without fresh=True to resume, or with fresh=True to start over" in str(caught.value)


def _stop_after(stop: harvester.Stop, demo: Any, requests: int) -> harvester.Stop:
    """`stop`, requested from the harvest's loop once the API has had `requests` requests."""
    loop = asyncio.get_running_loop()
    demo.after_requests(requests).add_done_callback(
        lambda _: loop.call_soon_threadsafe(stop.request, "a test")
    )
    return stop


# --- configs: paths, mappings, hand-built ---------------------------------------------------


def test_a_path_a_mapping_and_a_config_give_the_same_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9")
    raw = yaml.safe_load(path.read_text())
    from_path = resolve_config(path)
    assert resolve_config(str(path)) == from_path
    assert resolve_config(raw) == from_path
    assert resolve_config(from_path) == from_path


def test_keyword_and_dotted_overrides(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9")
    for source in (path, resolve_config(path)):
        config = resolve_config(
            source,
            workers=3,
            output="elsewhere.jsonl",
            overrides={"concurrency.rate_limit": 5, "pagination.page_size": 7},
        )
        assert config.concurrency.workers == 3
        assert config.output.path == "elsewhere.jsonl"
        assert (config.concurrency.rate_limit, config.pagination.page_size) == (5, 7)
    with pytest.raises(ConfigError, match=r"concurrency\.wrokers: unknown key \(did you mean"):
        resolve_config(path, overrides={"concurrency.wrokers": 3})
    with pytest.raises(ConfigError, match=r"concurrency\.workers: must be a number, got a string"):
        resolve_config(path, workers="4")  # type: ignore[arg-type]


def _hand_built(**concurrency: Any) -> Config:
    return Config(
        source=SourceConfig(url="http://127.0.0.1:9/items", records="items"),
        auth=AuthConfig(
            token_url="http://127.0.0.1:9/oauth2/token",
            client_id="demo",
            client_secret=SECRET,  # type: ignore[arg-type]  # plain text, as users will write
        ),
        concurrency=ConcurrencyConfig(**concurrency),
        output=OutputConfig(path="out.jsonl"),
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"concurrency": ConcurrencyConfig(workers=0)}, "concurrency.workers: must be >= 1, got 0"),
        ({"source": SourceConfig(url="ftp://x/items")}, "source.url: must be an http(s) URL"),
        ({"pagination": PaginationConfig(page_size=0)}, "pagination.page_size: must be >= 1"),
        ({"retry": RetryConfig(statuses=(401,))}, "retry.statuses: 401 is handled by the token"),
        ({"pagination": PaginationConfig(style="sideways")}, "pagination.style: must be one of"),  # type: ignore[arg-type]
        ({"concurrency": ConcurrencyConfig(workers="8")}, "concurrency.workers: must be a number"),  # type: ignore[arg-type]
        ({"output": OutputConfig(path="")}, "output.path: must name a file"),
    ],
)
def test_a_hand_built_config_is_validated_as_the_same_yaml_is(
    change: dict[str, Any], message: str
) -> None:
    config = dataclasses.replace(_hand_built(), **change)
    with pytest.raises(ConfigError) as from_python:
        harvester.harvest(config, progress=False)
    assert str(from_python.value).startswith(message)
    with pytest.raises(ConfigError) as from_yaml:  # the same document as YAML: the same error
        parse_config(yaml.safe_load(yaml.safe_dump(_as_yaml(config))), environ={})
    assert str(from_python.value) == str(from_yaml.value)


def _as_yaml(config: Config) -> Any:
    from harvester.config.plain import as_data

    return as_data(config)


def test_a_hand_built_config_gets_the_defaults_and_secret_wrapping_yaml_gets() -> None:
    config = resolve_config(_hand_built())
    assert config.pagination.total == "body:total"  # a default the checks fill in
    assert config.auth.client_secret is not None and config.auth.client_secret.reveal() == SECRET


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_a_validated_config_validates_to_itself(example: Path) -> None:
    for config in load_resources(example):  # each resource of a several-resources example
        assert validated(config) == config


def test_anything_else_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="config must be a path to a YAML file, a mapping"):
        harvester.harvest(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -3, 2.5, "10", True])
def test_max_records_must_be_a_positive_whole_number(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError, match="^max_records: must be"):
        harvester.harvest(write_config(tmp_path, "http://127.0.0.1:9"), max_records=value)


async def test_run_refuses_a_path_and_names_harvest() -> None:
    with pytest.raises(TypeError, match=r"run\(\) takes a validated harvester.Config, got str"):
        await harvester.run("config.yaml")  # type: ignore[arg-type]


# --- secrets ---------------------------------------------------------------------------------


def test_no_secret_in_the_repr_of_a_config(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, "http://127.0.0.1:9"))
    for config in (loaded, _hand_built(), resolve_config(_hand_built())):
        assert SECRET not in repr(config) and SECRET not in str(config)
        assert "client_secret='***'" in repr(config.auth)


async def test_no_secret_in_stats_or_errors(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url)
    stats = await harvester.harvest_async(config, progress=False)
    assert SECRET not in repr(stats) and SECRET not in str(stats.as_dict())
    wrong = write_config(tmp_path, demo.url, auth__client_secret=SECRET + "-wrong")
    with pytest.raises(AuthError) as caught:
        await harvester.harvest_async(wrong, progress=False, fresh=True)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)


# --- the public surface ------------------------------------------------------------------------


def test_every_public_name_has_a_docstring_of_its_own() -> None:
    for name in harvester.__all__:
        value = getattr(harvester, name)
        if not callable(value):
            continue  # __version__
        doc = value.__doc__ or ""
        assert doc.strip(), name
        assert not doc.startswith(f"{name}("), f"{name}: only the dataclass's generated doc"


async def test_importing_harvester_stays_light(tmp_path: Path) -> None:
    code = (
        "import sys, harvester\n"
        "heavy = {'pandas', 'pyarrow', 'numpy', 'ipykernel', 'IPython'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    status, stdout, stderr = await finished(await start_python(code, tmp_path))
    assert status == 0, stderr
    assert stdout.strip() == "[]"


def test_progress_modes_outside_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert progress_mode(False) == "none"
    assert progress_mode("auto") == "none"  # a script under cron: quiet
    assert progress_mode(True) == "log"
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert progress_mode("auto") == "bar"
    with pytest.raises(ValueError, match="progress must be"):
        progress_mode("bar")  # type: ignore[arg-type]
