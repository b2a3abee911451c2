"""A row per output format: records/s, CPU seconds and peak RSS of a harvest of the demo API.

    python benchmarks/bench_formats.py [--records 1000000] [--small 100000] [--only csv,jsonl.gz]

Each format harvests the same demo API process (no latency, pages of 1,000, 8 workers) twice: at
`--records` and at `--small` records, each run in a fresh Python process, so that the peak RSS
(ru_maxrss of that process) is the harvest's own. Memory stays flat when the peak at `--records`
is within 10% of the peak at `--small`: the "RSS ratio" column. The peak is the child's VmHWM
(ru_maxrss would carry over this process's own size from the fork). Every output is read back and
must hold the demo's ids in order (JSON Lines and CSV, after decompression).

FORMATS is the table of formats run; a format whose writer this checkout lacks is skipped.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib
import io
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's harvester, for the script and its children

import orjson  # noqa: E402
from bench_cpu import harvest_with  # noqa: E402
from common import demo_config  # noqa: E402

from harvester.demo.launch import demo_process  # noqa: E402
from harvester.errors import ConfigError  # noqa: E402
from harvester.writers import writer_class  # noqa: E402


@dataclass(frozen=True)
class Format:
    """One row of the table: the output's suffix, and how to count its records in order."""

    name: str
    suffix: str
    compression: str = "none"

    @property
    def writer(self) -> str:
        return self.name.split(".")[0]

    def count(self, path: Path) -> int:
        """The records in `path`, checked to be the ids 0, 1, 2, ... in order; read as a stream,
        so that this process stays small beside the harvests it starts."""
        if self.writer == "parquet":
            # The parquet extra's pyarrow, imported by name: only this format needs it.
            ds = importlib.import_module("pyarrow.dataset")
            values = ds.dataset(str(path), format="parquet").to_table(columns=["id"])["id"]
            ids: Iterator[int] = iter(values.to_pylist())
        else:
            lines = io.TextIOWrapper(open_decompressed(path, self.compression), newline="")
            if self.writer == "csv":
                ids = (int(row["id"]) for row in csv.DictReader(lines))
            else:
                ids = (orjson.loads(line)["id"] for line in lines)
        count = 0
        for expected, found in enumerate(ids):
            if found != expected:
                raise SystemExit(f"FAILED: {path.name} does not hold the ids in order")
            count += 1
        return count


def open_decompressed(path: Path, compression: str) -> BinaryIO:
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "zstd":
        reader = importlib.import_module("zstandard").ZstdDecompressor()
        return cast(BinaryIO, reader.stream_reader(path.open("rb"), read_across_frames=True))
    return path.open("rb")


FORMATS = [
    Format("jsonl", ".jsonl"),
    Format("jsonl.gz", ".jsonl.gz", "gzip"),
    Format("jsonl.zst", ".jsonl.zst", "zstd"),
    Format("csv", ".csv"),
    Format("csv.gz", ".csv.gz", "gzip"),
    Format("parquet", ".parquet"),
]


def available(fmt: Format) -> bool:
    try:
        writer_class(fmt.writer)
    except (ConfigError, ImportError):
        return False
    return True


def measure(url: str, fmt: Format, records: int, folder: Path) -> dict[str, Any]:
    out = folder / f"out{fmt.suffix}"
    raw = demo_config(url, out, workers=8)
    raw["pagination"] = {"page_size": 1000, "total": "body:total"}
    result = harvest_with(ROOT, raw)  # a fresh process: its peak RSS is the harvest's own
    if result["records"] != records or fmt.count(out) != records:
        raise SystemExit(f"FAILED: {fmt.name} wrote {result['records']} of {records} records")
    result["size"] = out.stat().st_size
    out.unlink()
    return result


def measure_all(formats: list[Format], records: int) -> dict[str, dict[str, Any]]:
    """Each format's harvest of a demo API holding `records` records."""
    demo = ["--port=0", "--quiet", f"--records={records}", "--max-page-size=1000"]
    results = {}
    with demo_process(demo) as url, tempfile.TemporaryDirectory() as tmp:
        # Unmeasured: the demo builds and caches its pages on the first harvest, which would
        # otherwise be charged to whichever format comes first.
        measure(url, FORMATS[0], records, Path(tmp))
        for fmt in formats:
            results[fmt.name] = measure(url, fmt, records, Path(tmp))
            print(f"  {fmt.name} at {records:,}: done", file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--only", help="comma-separated format names")
    args = parser.parse_args()
    chosen = [f for f in FORMATS if args.only is None or f.name in args.only.split(",")]
    skipped = [f for f in chosen if not available(f)]
    chosen = [f for f in chosen if f not in skipped]
    print(
        f"{args.records:,} records (and {args.small:,}) of the demo API, pages of 1,000, "
        "8 workers, no latency; each run a fresh process",
        flush=True,
    )
    small = measure_all(chosen, args.small)
    big = measure_all(chosen, args.records)
    print(
        f"{'format':<10} {'records/s':>10} {'CPU s':>7} {'peak RSS':>9} {'at small':>9} "
        f"{'RSS ratio':>9} {'MB out':>7}"
    )
    for fmt in chosen:
        b, s = big[fmt.name], small[fmt.name]
        print(
            f"{fmt.name:<10} {args.records / b['elapsed']:>10,.0f} {b['cpu']:>7.1f} "
            f"{b['rss_kib'] / 1024:>7.0f}MB {s['rss_kib'] / 1024:>7.0f}MB "
            f"{b['rss_kib'] / s['rss_kib']:>9.2f} {b['size'] / 1e6:>7.1f}"
        )
    for fmt in skipped:
        print(f"{fmt.name:<10} (skipped: no {fmt.writer} writer in this checkout)")


if __name__ == "__main__":
    main()
