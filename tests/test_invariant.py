"""The invariant of issue 9, against server behaviours and client settings drawn at random.

Exit 0 means the exact dataset: for every drawn server and client, run() either returns and the
output file holds exactly the expected records (every one once, in order, byte for byte), or it
raises HarvesterError and there is no file at the output path. What is drawn, and why the oracle
is honest about it, is in tests/invariant_scenarios.py.

A bounded number of examples runs in the normal suite; more with

    HARVESTER_INVARIANT_EXAMPLES=1000 .venv/bin/python -m pytest tests/test_invariant.py

Before the drawn examples, every run goes through KNOWN: each behaviour issue 9 names, and the
falsifying examples this test has found.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, event, example, given, settings

from harvester.config import Config, parse_config
from harvester.demo import DemoSettings, run_demo
from harvester.errors import HarvesterError
from harvester.runner import run

from .conftest import expected_bytes, no_wait_policy, raw_config
from .invariant_scenarios import ATTEMPTS, KNOWN, Scenario, scenarios

EXAMPLES = int(os.environ.get("HARVESTER_INVARIANT_EXAMPLES", "100"))
HANG = 60.0  # seconds after which one example counts as hung


def described(written: bytes, accepted: tuple[int, ...]) -> str:
    """What is wrong with the output, in ids: how many, lost, written twice."""
    ids = [orjson.loads(line).get("id") for line in written.splitlines() if line.startswith(b"{")]
    seen = set(ids)
    lost = [i for i in range(max(accepted)) if i not in seen]
    twice = len(ids) - len(seen)
    return (
        f"exit 0 with {len(ids)} records, expected {' or '.join(map(str, accepted))}: "
        f"{len(lost)} lost (first {lost[:5]}), {twice} written twice"
    )


def config_for(scenario: Scenario, base_url: str, out: Path) -> Config:
    """The drawn config for the demo API at `base_url`. The drawn pagination replaces the
    default one whole, so that its `total: body:total` does not reach styles that read another."""
    sections = {name: dict(values) for name, values in scenario.config.items()}
    sections["source"]["url"] = base_url + sections["source"]["url"]
    raw = raw_config(base_url, out, **sections)
    raw["pagination"] = sections["pagination"]
    return parse_config(raw, environ={})


async def check(scenario: Scenario, folder: Path) -> None:
    """Harvest the scenario into `folder`: the exact dataset, or HarvesterError and no file."""
    out = folder / "out.jsonl"
    event(f"endpoint: {scenario.config['source']['url']}")
    async with run_demo(DemoSettings(**scenario.server)) as demo:
        config = config_for(scenario, demo.url, out)
        try:
            async with asyncio.timeout(HANG):
                await run(config, policy=no_wait_policy(max_attempts=ATTEMPTS))
        except HarvesterError as exc:
            event(f"failed: {type(exc).__name__}")
            assert not out.exists(), f"failed ({exc}) yet left a file at the output path"
            return
    event("exit 0")
    written = out.read_bytes()
    assert written in {expected_bytes(count) for count in scenario.accepted}, described(
        written, scenario.accepted
    )


def known_examples(test: Any) -> Any:
    """Every KNOWN scenario, run before the drawn ones on every run, whatever EXAMPLES is."""
    for scenario in KNOWN:
        test = example(scenario=scenario)(test)
    return test


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays stable
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@known_examples
@given(scenario=scenarios())
def test_exit_0_means_the_exact_dataset(tmp_path: Path, scenario: Scenario) -> None:
    # tmp_path is shared by the examples: each gets a folder of its own, with no checkpoint.
    asyncio.run(check(scenario, Path(tempfile.mkdtemp(dir=tmp_path))))
