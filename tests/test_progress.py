"""The progress line's fields and fitting, the display modes of progress.watch, and the log
formats; the CLI's --quiet, --log-format json and log lines when stderr is not a terminal."""

from __future__ import annotations

import io
import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import harvester.progress
from harvester import cli
from harvester.demo import DemoServer
from harvester.demo.launch import demo_process
from harvester.logs import JsonFormatter, setup_logging
from harvester.progress import watch
from harvester.progress_line import Snapshot, layout, plain_line, snapshot
from harvester.secrets import Secrets
from harvester.stats import Stats

from .conftest import SECRET, CliResult, assert_one_clear_line, run_cli, write_config

FULL = Snapshot(
    records=1_234_567,
    target=2_000_000,
    resumed=1_000_000,
    elapsed=3725.0,
    rate=12_345.6,
    retries=17,
    cool_downs=3,
    limit=16,
    rate_limit=12.5,
    quota_wait=0.0,
)
# Each field's text in FULL, most worth keeping first.
BY_WORTH = [
    "1,234,567/2,000,000 records",
    "61%",
    "12,346 rec/s",
    "ETA 1:02",
    "resumed at 1,000,000",
    "|{bar}|",
    "1:02:05 elapsed",
    "retries 17",
    "cool-downs 3",
    "limit 16",
    "rate 12.5/s",
]


def shown(line: str) -> list[str]:
    return [text for text in BY_WORTH if text in line]


def test_the_full_line_in_display_order() -> None:
    assert layout(FULL, None) == (
        "61%|{bar}| 1,234,567/2,000,000 records  12,346 rec/s  ETA 1:02  "
        "resumed at 1,000,000  1:02:05 elapsed  retries 17  cool-downs 3  limit 16  rate 12.5/s"
    )
    assert plain_line(FULL).startswith("61%  1,234,567/2,000,000 records  12,346 rec/s")


@given(width=st.integers(min_value=1, max_value=200))
def test_fields_go_least_worth_first_and_the_line_fits(width: int) -> None:
    line = layout(FULL, width)
    # The bar at its shortest (10 cells); tqdm widens it to the width, never past it.
    assert len(line.format(bar="#" * 10)) <= width
    kept = shown(line)
    assert kept == BY_WORTH[: len(kept)]  # a field shows only if every worthier one does
    if width >= 28:
        assert "records" in line


def test_a_quota_wait_comes_right_after_the_percentage() -> None:
    waiting = Snapshot(**{**FULL.__dict__, "quota_wait": 125.0})
    assert layout(waiting, 60) == "61%  1,234,567/2,000,000 records  quota resets in 2:05"


def test_no_target_no_percentage_no_bar_no_eta() -> None:
    open_end = Snapshot(**{**FULL.__dict__, "target": None, "resumed": 0})
    assert layout(open_end, 80) == (
        "1,234,567 records  12,346 rec/s  1:02:05 elapsed  retries 17  cool-downs 3"
    )


def test_a_resumed_run_counts_its_pace_from_its_own_records() -> None:
    stats = Stats(started=time.monotonic() - 10.0)
    stats.resumed_records = 1_000  # the checkpoint is read before the sink loads its state
    early = snapshot(stats)
    assert (early.records, early.rate) == (1_000, 0.0)
    stats.records, stats.total_records = 1_500, 3_000
    snap = snapshot(stats)
    assert snap.rate == pytest.approx(50.0, rel=0.2)  # 500 records this run in ~10 s
    assert snap.eta == pytest.approx(1_500 / snap.rate)
    assert "resumed at 1,000" in layout(snap, 79)


def test_max_records_is_the_target_of_the_percentage_and_eta() -> None:
    stats = Stats(started=time.monotonic() - 10.0)
    stats.records, stats.total_records = 250, 20_000
    snap = snapshot(stats, max_records=1_000)
    assert snap.target == 1_000 and snap.share == 0.25
    assert layout(snap, 79).startswith("25%|{bar}| 250/1,000 records")
    assert snapshot(stats, max_records=50_000).target == 20_000
    stats.total_records = None  # an open end: --max-records still gives one
    assert snapshot(stats, max_records=1_000).target == 1_000


# --- watch ------------------------------------------------------------------------------------


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harvester.progress, "REDRAW_INTERVAL", 0.001)
    monkeypatch.setattr(harvester.progress, "LOG_INTERVAL", 0.001)


def run_until(stats: Stats, shown: io.StringIO, needle: str) -> None:
    """Count records until `needle` is on the stream (bounded, no sleeps to wait)."""
    deadline = time.monotonic() + 30
    while needle not in shown.getvalue():
        assert time.monotonic() < deadline, shown.getvalue()
        stats.records = min(stats.records + 1, 100)
        time.sleep(0)


def test_bar_mode_draws_one_line_in_place_and_clears_it(fast: None) -> None:
    out = io.StringIO()
    stats = Stats(total_records=100)
    with watch(stats, mode="bar", stream=out):
        run_until(stats, out, "100/100 records")
    written = out.getvalue()
    assert "\n" not in written and written.count("\r") >= 2
    assert written.endswith("\r")  # the line is gone: the summary takes its place


def test_auto_off_a_terminal_logs_lines(fast: None, caplog: pytest.LogCaptureFixture) -> None:
    stats = Stats(total_records=100)
    with caplog.at_level(logging.INFO, logger="harvester"), watch(stats, stream=io.StringIO()):
        deadline = time.monotonic() + 30
        while len(caplog.records) < 2:
            assert time.monotonic() < deadline
            time.sleep(0)
    line = caplog.records[0].getMessage()
    assert line.startswith("progress: 0%  0/100 records  0 rec/s"), line
    fields = caplog.records[0].harvester_progress
    assert (fields["records"], fields["target_records"], fields["percent"]) == (0, 100, 0.0)


def test_none_shows_nothing(fast: None, caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    with caplog.at_level(logging.DEBUG), watch(Stats(), mode="none", stream=out):
        pass
    assert out.getvalue() == "" and not caplog.records


def test_notebook_mode_shows_a_widget_that_ends_with_the_last_numbers(
    fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tqdm.notebook

    shown: list[Any] = []
    monkeypatch.setattr(tqdm.notebook, "display", shown.append)
    stats = Stats()
    with watch(stats, mode="notebook"):
        stats.total_records, stats.records = 300, 300
    (widget,) = shown
    text, bar, counts = widget.children
    assert (bar.max, bar.value, bar.bar_style) == (300, 300, "success")
    assert text.value == "100%" and "300/300\u2007records" in counts.value


def test_notebook_mode_without_ipywidgets_is_a_text_line(
    fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets fails
    out = io.StringIO()
    stats = Stats(total_records=100)
    with watch(stats, mode="notebook", stream=out):
        run_until(stats, out, "100/100 records")
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("100%|") and last.endswith("\n")  # it stays when done
    assert max(len(part) for part in out.getvalue().split("\r")) <= 101


def test_log_records_go_above_the_line_and_stay_masked(
    fast: None, capsys: pytest.CaptureFixture[str], harvester_logging: None
) -> None:
    setup_logging("INFO")  # to sys.stderr, which capsys holds
    secrets = Secrets([SECRET])
    stats = Stats(total_records=100)
    with secrets.masking_logs(), watch(stats, mode="bar", stream=sys.stderr):
        while "0/100 records" not in capsys.readouterr().err:
            time.sleep(0)
        logging.getLogger("harvester").warning("refused key %s", SECRET)
    err = capsys.readouterr().err
    assert SECRET not in err
    # tqdm.write: the line cleared (\r, spaces, \r), the record, then the line again.
    assert re.search(r"\r *\r\d{4}-\d\d-\d\d [\d:]{8} WARNING refused key \*\*\*\n\r0%", err), err


def test_json_records_carry_an_iso_utc_time_level_message_and_counters() -> None:
    record = logging.LogRecord("harvester", logging.INFO, __file__, 1, "progress: %s", ("x",), None)
    record.harvester_progress = {"records": 5}
    document = orjson.loads(JsonFormatter().format(record))
    assert document["level"] == "INFO" and document["message"] == "progress: x"
    assert document["records"] == 5
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["time"])
    assert abs(datetime.fromisoformat(document["time"]).timestamp() - record.created) < 0.001


# --- the command line -------------------------------------------------------------------------


async def test_quiet_says_nothing_on_success(demo: DemoServer, tmp_path: Path) -> None:
    result = await run_cli(str(write_config(tmp_path, demo.url)), "--quiet")
    assert (result.code, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "out" / "items.jsonl").read_bytes().count(b"\n") == 1_000


async def test_quiet_still_says_what_failed(tmp_path: Path) -> None:
    result = await run_cli(str(write_config(tmp_path, "http://127.0.0.1:9")), "--quiet")
    assert result.code == 1 and result.stdout == ""
    assert_one_clear_line(result, "127.0.0.1:9")
    assert " INFO " not in result.stderr


async def test_a_bar_between_json_lines_is_a_usage_error(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, "http://127.0.0.1:9"))
    result = await run_cli(config, "--log-format", "json", "--progress", "bar")
    assert result.code == 2 and "--progress bar" in result.stderr.splitlines()[-1]


async def test_text_logs_carry_the_date(demo: DemoServer, tmp_path: Path) -> None:
    result = await run_cli(str(write_config(tmp_path, demo.url)))
    assert result.code == 0, result.stderr
    for line in result.stderr.splitlines():
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING) ", line), line


def run_main(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """cli.main in this process against a demo API in another, each request 0.1 s late."""
    options = ["--port", "0", "--quiet", "--records", "2000", "--latency", "0.1"]
    with demo_process([*options, "--client-secret", SECRET]) as url:
        config = write_config(tmp_path, url, concurrency__workers=2)
        code = cli.main([str(config), *args])
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


@pytest.fixture
def main_here(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    harvester_logging: None,
) -> Callable[..., CliResult]:
    """run_main, a progress log line every 0.05 s instead of every 10 s."""
    monkeypatch.setattr(harvester.progress, "LOG_INTERVAL", 0.05)
    return lambda *args: run_main(tmp_path, capsys, *args)


def test_json_logs_every_stderr_line_with_progress_counters_toward_max_records(
    main_here: Callable[..., CliResult],
) -> None:
    result = main_here("--log-format", "json", "--max-records", "500")
    assert result.code == 0, result.stderr
    documents = [orjson.loads(line) for line in result.stderr.splitlines()]
    assert all({"time", "level", "message"} <= d.keys() for d in documents)
    progress = [d for d in documents if d["message"].startswith("progress: ")]
    assert progress, result.stderr
    assert all(d["target_records"] == 500 for d in progress)  # not the dataset's 2,000
    assert all(d["percent"] == round(d["records"] / 5, 1) for d in progress)
    assert "records      500" in result.stdout


def test_off_a_terminal_a_progress_line_every_interval(
    main_here: Callable[..., CliResult],
) -> None:
    result = main_here()
    assert result.code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if " INFO progress: " in line]
    assert len(lines) >= 2, result.stderr
    assert re.search(r"INFO progress: \d+%  [\d,]+/2,000 records  [\d,]+ rec/s  ETA ", lines[-1])
    assert "\r" not in result.stderr


def test_an_unknown_mode_is_refused() -> None:
    refused = pytest.raises(ValueError, match="mode must be one of auto, bar, log, notebook, none")
    with refused, watch(Stats(), mode="widget"):  # type: ignore[arg-type]
        pass


def test_in_a_real_kernel_auto_is_a_widget_updated_to_the_end(tmp_path: Path) -> None:
    # nbclient and nbformat come with the Python API's tests (tests/test_notebook.py).
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    code = f"""
import asyncio, sys
sys.path.insert(0, {str(Path(harvester.progress.__file__).parent.parent)!r})
from harvester.progress import in_notebook, watch
from harvester.stats import Stats
stats = Stats(total_records=100)
with watch(stats):
    for _ in range(10):
        stats.records += 10
        await asyncio.sleep(0.05)
print(in_notebook())
"""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    client = nbclient.NotebookClient(notebook, timeout=120, store_widget_state=True)
    client.execute(cwd=str(tmp_path))
    outputs = notebook.cells[0].outputs
    assert [o["output_type"] for o in outputs] == ["display_data", "stream"], outputs
    assert "application/vnd.jupyter.widget-view+json" in outputs[0]["data"]
    assert outputs[1]["text"] == "True\n"
    models = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    states = {m["model_name"]: m["state"] for m in models.values()}
    bar = states["FloatProgressModel"]
    assert (bar["value"], bar["max"], bar["bar_style"]) == (100, 100, "success")


def test_json_mode_writes_asyncios_own_warnings_as_json_too(
    capsys: pytest.CaptureFixture[str], harvester_logging: None
) -> None:
    setup_logging("INFO", fmt="json")
    with Secrets([SECRET]).masking_logs():
        logging.getLogger("asyncio").warning("Task exception was never retrieved: %s", SECRET)
    document = orjson.loads(capsys.readouterr().err)
    assert document["level"] == "WARNING"
    assert document["message"] == "Task exception was never retrieved: ***"
