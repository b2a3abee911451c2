"""`harvester tune`: advise() on hand-made steps, tune() and the CLI against the demo API."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harvester.demo import DemoSettings, run_demo
from harvester.runner import run
from harvester.tune import Advice, Step, advise, report, tune

from .conftest import make_config, run_cli


def step(concurrency: int, per_second: int, *, throttled: int = 0, errors: int = 0) -> Step:
    """A one-second step with `per_second` requests, `throttled` and `errors` among them."""
    return Step(concurrency, seconds=1.0, requests=per_second, throttled=throttled, errors=errors)


# --- advise() --------------------------------------------------------------------------------


def test_clean_growing_steps_recommend_the_last_and_no_rate() -> None:
    assert advise([step(1, 10), step(2, 20), step(4, 40)]) == Advice(workers=4, rate_limit=None)


def test_a_429_step_sets_the_rate_below_the_best_clean_step() -> None:
    steps = [step(1, 10), step(2, 20), step(4, 38), step(8, 40), step(16, 30, throttled=5)]

    advice = advise(steps)

    assert advice.rate_limit == pytest.approx(0.9 * 40)
    # 8 was the fastest; 4 is within a tenth of it, and so enough.
    assert advice.workers == 4


def test_workers_are_the_smallest_concurrency_within_a_tenth_of_the_best() -> None:
    steps = [step(1, 10), step(2, 20), step(4, 35), step(8, 40), step(16, 20, throttled=1)]

    assert advise(steps).workers == 8  # 35 is more than a tenth below 40


def test_no_429_means_no_rate_limit_even_when_growth_stopped() -> None:
    advice = advise([step(1, 10), step(2, 20), step(4, 21)])

    assert advice == Advice(workers=2, rate_limit=None)


def test_every_step_throttled_recommends_one_worker() -> None:
    advice = advise([step(1, 50, throttled=3), step(2, 60, throttled=20)])

    assert advice.workers == 1
    assert advice.rate_limit is not None and advice.rate_limit > 0


def test_no_steps_recommend_one_worker_and_no_rate() -> None:
    assert advise([]) == Advice(workers=1, rate_limit=None)


def test_errors_above_five_percent_make_a_step_not_clean() -> None:
    steps = [step(1, 10), step(2, 20, errors=1), step(4, 40, errors=3)]  # 5 % is still fine

    assert advise(steps) == Advice(workers=2, rate_limit=None)


def test_errors_without_429s_recommend_no_rate_limit() -> None:
    advice = advise([step(1, 100, errors=10), step(2, 150, errors=20)])

    assert advice == Advice(workers=1, rate_limit=None)


def test_every_step_throttled_rate_stays_below_what_was_admitted() -> None:
    advice = advise([step(1, 50, throttled=40)])  # 10 admitted per second

    assert advice.rate_limit is not None
    assert advice.rate_limit <= 0.9 * 10


def test_step_latency_quantiles() -> None:
    timed = Step(1, latencies=[n / 100 for n in range(1, 101)])

    assert timed.latency(0.5) == pytest.approx(0.5, abs=0.01)
    assert timed.latency(0.95) == pytest.approx(0.95, abs=0.01)
    assert Step(1, latencies=[0.25]).latency(0.95) == 0.25
    assert math.isnan(Step(1).latency(0.5))
    assert Step(1).requests_per_second == Step(1).records_per_second == 0.0


# --- Advice.config_lines() and report() ------------------------------------------------------


def test_config_lines_without_a_rate() -> None:
    assert Advice(workers=4, rate_limit=None).config_lines() == "concurrency:\n  workers: 4"


def test_config_lines_with_a_rate() -> None:
    lines = Advice(workers=2, rate_limit=36.0).config_lines()

    assert lines == "concurrency:\n  workers: 2\n  rate_limit: 36"


@pytest.mark.parametrize("advice", [Advice(2, 161.6), Advice(8, None), Advice(1, 0.1)])
def test_config_lines_paste_into_a_valid_config(advice: Advice, tmp_path: Path) -> None:
    pasted = yaml.safe_load(advice.config_lines())

    config = make_config("https://api.test", tmp_path / "out.jsonl", **pasted)

    assert config.concurrency.workers == advice.workers
    assert config.concurrency.rate_limit == advice.rate_limit


def test_report_has_a_row_per_step_and_the_lines_to_paste() -> None:
    steps = [step(1, 10), step(2, 20), step(4, 30, throttled=4)]
    steps[0].latencies = [0.020, 0.022]
    steps[1].records = 2000
    advice = advise(steps)

    text = report(steps, advice)

    lines = text.splitlines()
    assert lines[0].split() == ["workers", "req/s", "records/s", "p50", "ms", "p95", "ms"] + [
        "429s",
        "errors",
    ]
    rows = [line.split() for line in lines[1 : 1 + len(steps)]]
    assert [row[0] for row in rows] == ["1", "2", "4"]
    assert [row[1] for row in rows] == ["10.0", "20.0", "30.0"]
    assert rows[1][2] == "2,000"
    assert [row[-2] for row in rows] == ["0", "0", "4"]  # the 429s
    assert rows[1][3] == "nan"  # no latency measured: shown as such, not a crash
    assert lines[1 + len(steps)] == ""
    assert "recommended: workers 2 and rate_limit 18/s" in text
    assert text.endswith(advice.config_lines())


def test_report_without_a_rate_says_only_workers() -> None:
    text = report([step(1, 10)], Advice(workers=1, rate_limit=None))

    assert "recommended: workers 1; paste into the config:" in text
    assert "rate_limit" not in text


# --- tune() against the demo API -------------------------------------------------------------


DURATION = 3.0
MAX_WORKERS = 16


def limited_demo() -> DemoSettings:
    """100 requests/s (bursts of 100) at about 20 ms a page: more than 4 workers outrun it."""
    return DemoSettings(records=5000, latency=0.02, rate_limit=100)


@dataclass
class Tuned:
    steps: list[Step]
    advice: Advice
    seconds: float
    output: Path


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Tuned:
    """One real tune run, shared: it takes seconds, and every test here only reads it."""
    out = tmp_path_factory.mktemp("tune") / "x.jsonl"

    async def tune_the_demo() -> Tuned:
        async with run_demo(limited_demo()) as demo:
            config = make_config(demo.url, out)
            started = time.monotonic()
            steps, advice = await tune(config, max_workers=MAX_WORKERS, duration=DURATION)
            return Tuned(steps, advice, time.monotonic() - started, out)

    return asyncio.run(tune_the_demo())


def test_tune_returns_within_its_duration(tuned: Tuned) -> None:
    assert tuned.seconds <= DURATION + 1.0


def test_tune_never_writes_the_output(tuned: Tuned) -> None:
    assert list(tuned.output.parent.iterdir()) == []


def test_tune_ramps_by_doubling_and_stops_at_the_first_step_with_429s(tuned: Tuned) -> None:
    levels = [s.concurrency for s in tuned.steps]

    assert levels == [2**k for k in range(len(levels))]
    assert tuned.steps[-1].throttled > 0
    assert all(s.throttled == 0 for s in tuned.steps[:-1])
    assert levels[-1] < MAX_WORKERS  # stopped early
    assert all(s.records > 0 and s.errors == 0 for s in tuned.steps)


def test_tune_advice_follows_its_steps(tuned: Tuned) -> None:
    clean = [s.concurrency for s in tuned.steps if not s.throttled]

    assert tuned.advice == advise(tuned.steps)
    assert tuned.advice.workers in clean
    assert tuned.advice.rate_limit is not None  # a 429 was met


async def test_the_recommended_workers_harvest_with_few_429s(tuned: Tuned, tmp_path: Path) -> None:
    out = tmp_path / "harvest.jsonl"
    async with run_demo(limited_demo()) as demo:
        config = make_config(
            demo.url,
            out,
            # 250 pages: well past the 100 requests the demo's bucket lets through at once.
            pagination={"page_size": 20},
            concurrency={"workers": tuned.advice.workers, "adaptive": False},
        )
        assert config.concurrency.rate_limit is None
        stats = await run(config)
        served_429s = demo.stats.statuses[429]

    assert stats.records == 5000
    assert stats.statuses[429] == served_429s
    assert served_429s < 0.02 * stats.requests, stats.statuses


def slow_demo() -> DemoSettings:
    return DemoSettings(records=5000, latency=0.5)  # no answer before each step is over


async def test_tune_keeps_to_its_duration_when_the_api_is_slower_than_a_step(
    tmp_path: Path,
) -> None:
    async with run_demo(slow_demo()) as demo:
        config = make_config(demo.url, tmp_path / "x.jsonl")
        started = time.monotonic()
        steps, _ = await tune(config, max_workers=4, duration=0.3)
        elapsed = time.monotonic() - started

    assert elapsed <= 0.3 + 0.5
    assert [s.concurrency for s in steps] == [1, 2, 4]
    assert all(s.records == 0 and not s.latencies for s in steps)


async def test_requests_cut_off_at_the_end_of_a_step_do_not_count(tmp_path: Path) -> None:
    async with run_demo(slow_demo()) as demo:
        config = make_config(demo.url, tmp_path / "x.jsonl")
        steps, advice = await tune(config, max_workers=4, duration=0.3)

    assert [s.requests_per_second for s in steps] == [0.0, 0.0, 0.0]
    assert advice.workers == 1


# --- the command line ------------------------------------------------------------------------


def write_config(folder: Path, url: str) -> Path:
    raw: dict[str, Any] = {
        "source": {"url": f"{url}/items", "records": "items"},
        "auth": {
            "type": "client_credentials",
            "token_url": f"{url}/oauth2/token",
            "client_id": "demo",
            "client_secret": "demo-secret",
            "scope": "read",
        },
        "pagination": {"style": "offset", "page_size": 100},
        "output": {"path": str(folder / "out" / "items.jsonl")},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def no_demo_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, "http://127.0.0.1:9")  # never contacted


async def test_cli_tune_prints_the_table_and_the_config_lines(tmp_path: Path) -> None:
    async with run_demo(limited_demo()) as demo:
        config = write_config(tmp_path, demo.url)
        started = time.monotonic()
        result = await run_cli("tune", str(config), "--duration", "2", "--max-workers", "4")
        elapsed = time.monotonic() - started

    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["workers", "req/s", "records/s"]
    rows = lines[1 : lines.index("")]
    assert 1 <= len(rows) <= 3
    assert [row.split()[0] for row in rows] == ["1", "2", "4"][: len(rows)]
    block = result.stdout[result.stdout.index("concurrency:") :].splitlines()
    assert block[0] == "concurrency:"
    assert block[1].startswith("  workers: ")
    assert int(block[1].split(":")[1]) in (1, 2, 4)
    assert not (tmp_path / "out").exists()
    assert elapsed < 2 + 10  # the duration, and an interpreter's start-up


@pytest.mark.parametrize("duration", ["0", "-1", "nan"])
async def test_cli_tune_rejects_a_duration_out_of_range(
    no_demo_config: Path, duration: str
) -> None:
    result = await run_cli("tune", str(no_demo_config), f"--duration={duration}")

    assert result.code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == ["harvester: error: --duration must be between 0 and 86400 seconds"]
