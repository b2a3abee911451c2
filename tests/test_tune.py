"""`harvester tune`: advise() on hand-made steps, tune() and the CLI against the demo API."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harvester import cli
from harvester.config import Config
from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.runner import run
from harvester.tune import Advice, Step, advise, report, tune

from .conftest import HANG, FakeTime, make_config, run_cli

T0 = FakeTime().now  # where a FakeTime starts


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
# tune() runs on a FakeTime here, shared with the demo's rate limit: a step lasts until the demo
# has received as many requests as the test gives it, then the step's seconds pass at once. So a
# step measures the same on a busy machine as on an idle one, and no test waits out a duration.


DURATION = 3.0
MAX_WORKERS = 16  # levels 1, 2, 4, 8 and 16: a slice of DURATION / 5 each
SLICE = DURATION / 5
# Each worker's requests in a step: 25, 50, 100 and 200 a second at 1, 2, 4 and 8 workers.
PER_WORKER = 15


def limited_demo() -> DemoSettings:
    """100 requests/s (bursts of 100) at about 20 ms a page: more than 4 workers outrun it."""
    return DemoSettings(records=5000, latency=0.02, rate_limit=100)


def paced_demo() -> DemoSettings:
    """limited_demo's budget on the fake clock; its 429s ask for no wait, so that the fetcher's
    cool-down (on the real clock) holds no worker back."""
    return DemoSettings(records=5000, rate_limit=100, retry_after=0)


def steps_lasting(
    demo: DemoServer, fake: FakeTime, requests: Iterable[int]
) -> Callable[[float], Awaitable[None]]:
    """tune()'s sleep: the nth step lasts until `demo` has received the nth of `requests` more
    data requests, then its seconds pass on `fake`."""
    shares = iter(requests)

    async def step(seconds: float) -> None:
        await demo.wait_for_requests(demo.stats.data_requests + next(shares))
        await fake.sleep(seconds)

    return step


@dataclass
class Tuned:
    steps: list[Step]
    advice: Advice
    time: FakeTime
    output: Path


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Tuned:
    """One tune run, shared: every test here only reads it."""
    out = tmp_path_factory.mktemp("tune") / "x.jsonl"

    async def tune_the_demo() -> Tuned:
        fake = FakeTime()
        async with run_demo(paced_demo(), clock=fake.clock) as demo:
            config = make_config(demo.url, out)
            paced = steps_lasting(demo, fake, [PER_WORKER * 2**k for k in range(5)])
            async with asyncio.timeout(HANG):  # a regression fails these tests, not the suite
                steps, advice = await tune(
                    config,
                    max_workers=MAX_WORKERS,
                    duration=DURATION,
                    clock=fake.clock,
                    sleep=paced,
                )
            return Tuned(steps, advice, fake, out)

    return asyncio.run(tune_the_demo())


def test_tune_returns_within_its_duration(tuned: Tuned) -> None:
    # Every step had its equal slice and no more, measured on tune's clock.
    assert tuned.time.slept == pytest.approx([SLICE] * len(tuned.steps))
    assert [s.seconds for s in tuned.steps] == pytest.approx(tuned.time.slept)
    assert tuned.time.now - T0 <= DURATION


def test_tune_never_writes_the_output(tuned: Tuned) -> None:
    assert list(tuned.output.parent.iterdir()) == []


def test_tune_ramps_by_doubling_and_stops_at_the_first_step_with_429s(tuned: Tuned) -> None:
    levels = [s.concurrency for s in tuned.steps]

    assert levels == [2**k for k in range(len(levels))]
    assert tuned.steps[-1].throttled > 0
    assert all(s.throttled == 0 for s in tuned.steps[:-1])
    assert levels == [1, 2, 4, 8]  # 8 workers' 120 requests outran the budget; 16 never ran
    assert all(s.records > 0 and s.errors == 0 for s in tuned.steps)


def test_tune_advice_follows_its_steps(tuned: Tuned) -> None:
    clean = [s.concurrency for s in tuned.steps if not s.throttled]

    assert tuned.advice == advise(tuned.steps)
    assert tuned.advice.workers in clean
    assert tuned.advice.workers == 4  # the fastest clean step, 2 being half as fast
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


def silent_demo() -> DemoSettings:
    """An API slower than any step: it answers no data request until it stops."""
    return DemoSettings(records=5000, slow_rate=1.0, slow_seconds=HANG)


@dataclass
class Unanswered:
    steps: list[Step]
    advice: Advice
    time: FakeTime
    received: int  # data requests the demo had received when tune returned
    answered: int  # and answered


async def tune_the_silent_demo(tmp_path: Path) -> Unanswered:
    """tune() over 0.3 s and 1, 2 and 4 workers; each step ends once every worker has sent its
    request, which the demo holds."""
    fake = FakeTime()
    async with run_demo(silent_demo()) as demo:
        config = make_config(demo.url, tmp_path / "x.jsonl")
        held = steps_lasting(demo, fake, [1, 2, 4])
        async with asyncio.timeout(HANG):  # a tune that waited for an answer would hang here
            steps, advice = await tune(
                config, max_workers=4, duration=0.3, clock=fake.clock, sleep=held
            )
        received, answered = demo.stats.data_requests, sum(demo.stats.statuses.values())
    return Unanswered(steps, advice, fake, received, answered)


async def test_tune_keeps_to_its_duration_when_the_api_is_slower_than_a_step(
    tmp_path: Path,
) -> None:
    silent = await tune_the_silent_demo(tmp_path)

    # tune returned with all 7 of its requests unanswered: no step waited for an answer.
    assert (silent.received, silent.answered) == (1 + 2 + 4, 0)
    assert silent.time.slept == pytest.approx([0.1, 0.1, 0.1])
    assert silent.time.now - T0 == pytest.approx(0.3)
    assert [s.concurrency for s in silent.steps] == [1, 2, 4]
    assert all(s.records == 0 and not s.latencies for s in silent.steps)


async def test_requests_cut_off_at_the_end_of_a_step_do_not_count(tmp_path: Path) -> None:
    silent = await tune_the_silent_demo(tmp_path)

    assert silent.received == 1 + 2 + 4
    assert [s.requests_per_second for s in silent.steps] == [0.0, 0.0, 0.0]
    assert silent.advice.workers == 1


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
        result = await run_cli("tune", str(config), "--duration", "2", "--max-workers", "4")

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


@pytest.mark.usefixtures("harvester_logging")
def test_cli_tune_gives_tune_its_duration_and_max_workers(
    no_demo_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # That tune() keeps to its duration the tests above show on a fake clock; this shows the
    # command line's duration is the one it keeps to, without waiting it out.
    asked: dict[str, Any] = {}
    steps = [step(1, 10), step(2, 20)]

    async def fake_tune(config: Config, **options: Any) -> tuple[list[Step], Advice]:
        asked.update(options)
        return steps, advise(steps)

    monkeypatch.setattr(cli, "tune", fake_tune)

    code = cli.main(["tune", str(no_demo_config), "--duration", "2", "--max-workers", "4"])

    assert code == 0
    assert (asked["duration"], asked["max_workers"]) == (2.0, 4)
    assert capsys.readouterr().out == report(steps, advise(steps)) + "\n"


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
