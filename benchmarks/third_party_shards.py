"""--shard K/N and harvester merge against API servers somebody else wrote, not the demo.

    make third-party-shards             # after `make third-party` installed the servers
    .venv/bin/python benchmarks/third_party_shards.py [--only NAME[,NAME]] [--shards 3]

For every endpoint style of benchmarks/third_party_cases.py that can be sharded (a total the
first answer tells, or cursor and link windows), at its smaller page size and 16 workers: one
uninterrupted run, then N shards run one after another and `harvester merge`. The merged file must
be the uninterrupted run's bytes (sha256), and hold exactly what the server serves (judged as
third_party.py judges a run: no record missing, duplicated or altered, in the server's order).
Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from third_party import HARVESTER_PY, ROOT, STATE, judge, running
from third_party_cases import DEFAULT_RECORDS, SERVERS, Case, seeded_records


def shardable(case: Case) -> bool:
    pagination = case.style.pagination
    if case.style.chained:
        return "partition" in pagination
    return case.total != "unknown"


def cases(server: Any) -> list[Case]:
    """One case per shardable style and total: the smaller page size, 16 workers."""
    found = []
    for style in server.styles:
        for total in style.totals:
            case = Case(server.name, style, total, min(style.sizes), 16, None)
            if shardable(case) and not case.may_fail:
                found.append(case)
    return found


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(HARVESTER_PY), "-m", "harvester", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "-"


def one_case(case: Case, base: str, work: Path, shards: int, reference: list[Any]) -> list[str]:
    """The row for `case`: single sha == merged sha, the merged file's verdict."""
    folder = work / case.name.replace("/", "_")
    folder.mkdir(parents=True)
    single, merged = folder / "single" / "out.jsonl", folder / "sharded" / "out.jsonl"
    configs = []
    for out in (single, merged):
        out.parent.mkdir()
        config = out.parent / "cfg.yaml"
        config.write_text(yaml.safe_dump(case.config(base, out), sort_keys=False))
        configs.append(config)
    quiet = ("--progress", "none", "--quiet")
    failures = []
    done = cli(str(configs[0]), *quiet)
    if done.returncode:
        failures.append(f"single run exit {done.returncode}: {done.stderr.strip()[-200:]}")
    for k in range(shards):
        done = cli(str(configs[1]), *quiet, "--shard", f"{k}/{shards}")
        if done.returncode:
            failures.append(f"shard {k} exit {done.returncode}: {done.stderr.strip()[-200:]}")
    done = cli("merge", str(configs[1]), "--shards", str(shards))
    if done.returncode:
        failures.append(f"merge exit {done.returncode}: {done.stderr.strip()[-200:]}")
    same = sha256(single) == sha256(merged) != "-"
    result = judge(case, reference, merged, done.returncode, "; ".join(failures))
    left = sorted(p.name for p in merged.parent.iterdir() if p.name not in ("cfg.yaml",))
    return [
        case.server,
        f"{case.style.name} ({case.total})",
        str(shards),
        "yes" if same else "NO",
        result.verdict,
        ", ".join(left),
        "; ".join(failures)[:160],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="server names, comma-separated")
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    args = parser.parse_args()
    seeded = seeded_records(args.records)
    rows = []
    for make in SERVERS:
        server = make(args.records)
        if args.only and server.name not in args.only.split(","):
            continue
        if not server.installed.exists():
            print(f"{server.name}: not installed (run `make third-party`), skipped", flush=True)
            continue
        work = STATE / "runs-shards" / server.name
        subprocess.run(["rm", "-rf", str(work)], check=True)
        work.mkdir(parents=True)
        with running(server, work, seeded) as base:
            reference = server.reference(base)
            for case in cases(server):
                own = case.style.reference  # an endpoint serving another dataset than the main
                served = own(base) if own is not None else reference
                row = one_case(case, base, work, args.shards, served)
                print("  " + " | ".join(row[:6]), flush=True)
                rows.append(row)
    header = ["server", "style (total)", "N", "merged = one run", "verdict", "left in folder"]
    print("\n| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row[:6]) + " |")
    bad = [row for row in rows if row[3] != "yes" or row[4] != "ok"]
    for row in bad:
        print(f"FAILED {row[0]} {row[1]}: {row[6]}")
    print(f"\n{len(rows) - len(bad)} of {len(rows)} sharded harvests exact")
    return 1 if bad or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
