"""Fault suite: each fault alone, then all together; every record must arrive exactly once.

    python benchmarks/fault_suite.py [--records 20000] [--latency 0.1] [--workers 4] [--seed 1]

Each scenario starts the demo API in a process of its own on loopback with one fault switched on
(or all of them), runs the real CLI (`python -m harvester CONFIG --stats-json ...`) and compares
its output with the expected records. lost: expected ids missing from the output; duplicated:
ids written more than once; identical: the output is byte for byte the expected file. Exits 1
unless every scenario's output is identical.

requests: harvester's data requests; served: the data requests the server saw. They differ by
the drops aiohttp resends on its own (once per request, unseen by harvester, see README). The
retry columns are harvester's stats by cause; counts: whether each equals what the server says
it served (5xx answers; drops less those resends; truncated and cut bodies; slow answers; 401s;
429s). wall s is the harvest's own time (token request to rename). The client waits at most 1 s
for an answer (source.timeout); slow answers take 5 s.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from common import demo_config, served

from harvester.demo import expected_records
from harvester.demo.launch import demo_process

TIMEOUT = 1.0
CAUSES = ("5xx", "connection", "invalid_body", "timeout", "401", "429")


@dataclass(frozen=True)
class Scenario:
    name: str
    demo: tuple[str, ...]  # demo API options that switch the fault on


@dataclass(frozen=True)
class Row:
    scenario: str
    stats: dict[str, Any]
    served: dict[str, Any]  # the demo API's /_stats
    lost: int
    duplicated: int
    identical: bool

    @property
    def counts_agree(self) -> bool:
        """Each retry cause counted as often as the server says it served that fault."""
        faults, statuses = self.served["faults"], self.served["statuses"]
        hidden_drops = self.served["data_requests"] - self.stats["requests"]
        server = {
            "5xx": faults["5xx"],
            "connection": faults["drop"] - hidden_drops,
            "invalid_body": faults["truncate"] + faults["cut"],
            "timeout": faults["slow"],
            "401": faults["401"],
            "429": statuses.get("429", 0),
        }
        return all(self.stats["retries"].get(c, 0) == n for c, n in server.items())


def scenarios(pages: int) -> list[Scenario]:
    """Each fault alone, then all at once; the one-off events fall in the middle of the run."""
    faults = [
        Scenario("10% 5xx", ("--fault-rate", "0.1")),
        Scenario("10% dropped connections", ("--drop-rate", "0.1")),
        Scenario("10% truncated bodies", ("--truncate-rate", "0.05", "--cut-rate", "0.05")),
        Scenario("5% slower than timeout", ("--slow-rate", "0.05", "--slow-seconds", "5")),
        Scenario("tokens expire every 2 s", ("--token-lifetime", "2")),
        # Every token revoked at once (a key rotation); the token endpoint takes 0.2 s, as real
        # ones do, so every worker meets the revoked token before the new one comes.
        Scenario(
            "burst of 401s",
            ("--revoke-tokens-after", str(pages // 3), "--token-latency", "0.2"),
        ),
        Scenario(
            "429 storm, Retry-After 0.2",
            ("--storm-at", str(pages // 2), "--storm-seconds", "1", "--retry-after", "0.2"),
        ),
    ]
    together = tuple(option for scenario in faults for option in scenario.demo)
    return [Scenario("no faults", ()), *faults, Scenario("all together", together)]


def run_scenario(scenario: Scenario, args: argparse.Namespace, folder: Path) -> Row:
    demo = ["--port", "0", "--quiet", "--records", str(args.records)]
    demo += ["--latency", str(args.latency), "--seed", str(args.seed), *scenario.demo]
    out, config, stats = folder / "out.jsonl", folder / "config.json", folder / "stats.json"
    out.unlink(missing_ok=True)
    with demo_process(demo) as url:
        raw = demo_config(url, out, workers=args.workers, page_size=args.page_size)
        raw["source"]["timeout"] = TIMEOUT
        raw["retry"] = {"max_attempts": 20, "initial_backoff": 0.05, "max_backoff": 1.0}
        config.write_bytes(orjson.dumps(raw))  # JSON is YAML
        command = [sys.executable, "-m", "harvester", str(config), "--stats-json", str(stats)]
        command += ["--progress", "none", "--log-level", "ERROR"]
        subprocess.run(command, check=False, timeout=600, stdout=subprocess.DEVNULL)
        server = served(url)
    summary: dict[str, Any] = orjson.loads(stats.read_bytes())
    if summary["exit_code"] != 0:
        print(f"{scenario.name}: harvester failed: {summary['error']}", file=sys.stderr)
    written = out.read_bytes() if out.exists() else b""
    ids = Counter(orjson.loads(line)["id"] for line in written.splitlines())
    return Row(
        scenario=scenario.name,
        stats=summary,
        served=server,
        lost=sum(1 for i in range(args.records) if i not in ids),
        duplicated=sum(1 for count in ids.values() if count > 1),
        identical=written == args.expected,
    )


def print_table(rows: list[Row]) -> None:
    columns = ("records", "requests", "served", *CAUSES, "tokens", "wall s", "lost", "dup")
    header = "".join(f"{c:>{max(len(c), 6) + 1}}" for c in columns)
    print(f"{'scenario':<28}{header} identical counts")
    for row in rows:
        s = row.stats
        values = [s["records"], s["requests"], row.served["data_requests"]]
        values += [s["retries"].get(cause, 0) for cause in CAUSES]
        values += [s["token_requests"], f"{s['elapsed_seconds']:.2f}", row.lost, row.duplicated]
        cells = "".join(f"{v:>{max(len(c), 6) + 1}}" for c, v in zip(columns, values, strict=True))
        identical = "yes" if row.identical else "NO"
        counts = "agree" if row.counts_agree else "OFF"
        print(f"{row.scenario:<28}{cells} {identical:>9} {counts:>6}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per data request")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1, help="for the demo's fault draws")
    args = parser.parse_args()
    args.expected = b"".join(orjson.dumps(r) + b"\n" for r in expected_records(args.records))
    pages = math.ceil(args.records / args.page_size)
    print(
        f"{args.records:,} records, {pages} pages of {args.page_size}, {args.workers} workers, "
        f"{args.latency * 1000:.0f} ms latency, source.timeout {TIMEOUT:g} s"
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in scenarios(pages):
            rows.append(run_scenario(scenario, args, Path(tmp)))
    print_table(rows)
    return 0 if all(row.identical for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
