"""The incremental state stays small: its size after 10 runs of 100,000 records each.

    python benchmarks/bench_incremental.py [--runs 10] [--records 100000] [--updated 1000]

Against the demo API's /changes (its own process, pages of 1,000, 8 workers): run 1 reads the
first `records` records; before each later run the demo adds `records` records and updates
`updated` older ones (a quarter of them committed late, found by the 5-minute lookback). Each
run is the real CLI; the state size is what its --stats-json reports. Checks that the folder
holds every record's latest version once; exits 1 if not, or if the state is 1 MB or more.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import demo_config  # noqa: E402

from harvester.demo.changes import changes_records  # noqa: E402
from harvester.demo.launch import demo_process  # noqa: E402

TARGET_BYTES = 1_000_000


def config(url: str, folder: Path) -> dict[str, Any]:
    raw = demo_config(url, folder, path="/changes", workers=8, page_size=1_000, total="body:total")
    raw["incremental"] = {
        "field": "updated_at",
        "param": "updated_since",
        "initial": "2024-01-01T00:00:00Z",
        "lookback": 300,
        "primary_key": "id",
    }
    return raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--records", type=int, default=100_000, help="per run")
    parser.add_argument("--updated", type=int, default=1_000, help="older records per run")
    args = parser.parse_args()
    options = ["--port", "0", "--quiet", "--records", str(args.records)]
    options += ["--changes-added", str(args.records), "--changes-updated", str(args.updated)]
    head = f"{args.runs} incremental runs of {args.records:,} new records"
    print(f"{head} (+{args.updated:,} updated)")
    print(f"{'run':>4} {'new':>9} {'seconds':>8} {'state bytes':>12} {'versions':>9}")
    with tempfile.TemporaryDirectory() as tmp, demo_process(options) as url:
        folder, stats = Path(tmp) / "changes", Path(tmp) / "stats.json"
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config(url, folder)))
        size = 0
        for run in range(args.runs):
            if run:
                request = urllib.request.Request(f"{url}/admin/next-generation", method="POST")
                urllib.request.urlopen(request).close()  # noqa: S310 (loopback, our demo)
            started = time.perf_counter()
            command = [sys.executable, "-m", "harvester", str(path), "--quiet"]
            subprocess.run([*command, "--stats-json", str(stats)], check=True)
            outcome = orjson.loads(stats.read_bytes())["incremental"]
            size = outcome["state_bytes"]
            print(
                f"{run + 1:>4} {outcome['new_records']:>9,} {time.perf_counter() - started:>8.1f} "
                f"{size:>12,} {outcome['state_versions']:>9,}"
            )
        latest: dict[int, bytes] = {}
        lines = 0
        for file in sorted(folder.glob("*.jsonl")):
            for line in file.read_bytes().splitlines():
                latest[orjson.loads(line)["id"]] = line
                lines += 1
        now = changes_records(args.records, args.records, args.updated, args.runs - 1)
        correct = len(latest) == len(now) and all(orjson.loads(latest[r["id"]]) == r for r in now)
    print(f"folder: {lines:,} lines, {len(latest):,} records, latest versions correct: {correct}")
    print(f"state after {args.runs} runs: {size:,} bytes (target < {TARGET_BYTES:,})")
    return 0 if correct and size < TARGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
