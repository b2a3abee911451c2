"""Parquet's cost beside pyarrow's own: the same records, the same codec and row groups.

    python benchmarks/bench_parquet.py [--records 1000000] [--cli 100000,1000000]

Each measure runs in a fresh process (CPU seconds of the process and its threads, peak RSS); three
rounds of the three, interleaved, and each way's round of median CPU time is shown:
- harvester: the demo API's records as the sink hands them over (JSON Lines pages of 100
  records), through harvester's ParquetWriter with a checkpoint every 50,000 records, then
  finish (the spool read back, cast to the final schema, written in row groups);
- pyarrow direct: the same JSON Lines, built into record batches by pyarrow.json.read_json (with
  the schema given: pyarrow's fastest way from JSON) and written with pq.ParquetWriter;
- pyarrow from_pylist: the same records decoded by orjson, built with pa.Table.from_pylist (what
  a notebook's loop does) and written the same way.
The records are made before the measure starts; their bytes are not counted. Exits 1 if
harvester's CPU time is over 1.5x pyarrow direct's, or its file's rows differ.

With --cli, whole harvests too: `python -m harvester` against the demo API (its own process,
pages of 1,000, 16 workers) for each record count, to JSON Lines and to Parquet, the CLI's CPU
seconds and peak RSS read from wait4(); exits 1 if Parquet's peak RSS at the largest count is
over 1.1x that at the smallest, or an output is not the dataset.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.json as pa_json  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from common import check_output, demo_config  # noqa: E402

from harvester.demo.launch import demo_process  # noqa: E402
from harvester.demo.records import expected_record  # noqa: E402
from harvester.page import Page  # noqa: E402
from harvester.writers import parquet as harvester_parquet  # noqa: E402
from harvester.writers.base import Format, Target  # noqa: E402

PAGE = 100
CHECKPOINT_EVERY = 50_000
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("value", pa.int64()),
        ("created_at", pa.string()),
        ("tags", pa.list_(pa.string())),
    ]
)


def pages(records: int) -> list[bytes]:
    return [
        b"".join(orjson.dumps(expected_record(i)) + b"\n" for i in range(s, min(s + PAGE, records)))
        for s in range(0, records, PAGE)
    ]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def with_harvester(data: list[bytes], out: Path) -> None:
    target = Target(path=out.with_name(out.name + ".part"), output=out)
    writer = harvester_parquet.WRITER(target, Format(name="parquet"))
    writer.open(None)
    for index, page in enumerate(data):
        writer.write(Page(index, page, page.count(b"\n")))
        if (index + 1) * PAGE % CHECKPOINT_EVERY == 0:
            for fd in writer.checkpoint()[1]:
                os.fsync(fd)
                os.close(fd)
    writer.finish()
    writer.place()
    writer.close()


def chunks(data: list[bytes]) -> list[bytes]:
    """The pages joined into chunks of the size harvester converts at once."""
    joined, held, size = [], [], 0
    for page in data:
        held.append(page)
        size += len(page)
        if size >= harvester_parquet.CHUNK_BYTES:
            joined.append(b"".join(held))
            held, size = [], 0
    return [*joined, b"".join(held)] if held else joined


def write_groups(tables: Iterator[pa.Table], out: Path) -> None:
    """The tables written in row groups of ROW_GROUP_ROWS records, as harvester does; fsynced."""
    size = harvester_parquet.ROW_GROUP_ROWS
    with open(out, "wb") as handle:
        with pq.ParquetWriter(handle, SCHEMA, compression=harvester_parquet.CODEC) as writer:
            held: list[pa.Table] = []
            rows = 0
            for table in tables:
                held.append(table)
                rows += table.num_rows
                while rows >= size:
                    joined = pa.concat_tables(held)
                    writer.write_table(joined.slice(0, size), row_group_size=size)
                    held, rows = [joined.slice(size)], rows - size
            if rows:
                writer.write_table(pa.concat_tables(held), row_group_size=size)
        handle.flush()
        os.fsync(handle.fileno())


def pyarrow_direct(data: list[bytes], out: Path) -> None:
    options = pa_json.ParseOptions(explicit_schema=SCHEMA)

    def tables() -> Iterator[pa.Table]:
        for chunk in chunks(data):
            reading = pa_json.ReadOptions(use_threads=False, block_size=len(chunk) + 1)
            yield pa_json.read_json(io.BytesIO(chunk), read_options=reading, parse_options=options)

    write_groups(tables(), out)


def pyarrow_from_pylist(data: list[bytes], out: Path) -> None:
    def tables() -> Iterator[pa.Table]:
        for chunk in chunks(data):
            yield pa.Table.from_pylist([orjson.loads(line) for line in chunk.splitlines()], SCHEMA)

    write_groups(tables(), out)


WAYS = {
    "harvester": with_harvester,
    "pyarrow direct": pyarrow_direct,
    "pyarrow from_pylist": pyarrow_from_pylist,
}


def measure(way: str, records: int, out: Path, answer: Any) -> None:
    data = pages(records)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, wall = cpu(), time.perf_counter()
    WAYS[way](data, out)
    answer.put(
        {
            "cpu": cpu() - start,
            "wall": time.perf_counter() - wall,
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mib": rss_before / 1024,
        }
    )


def run(way: str, records: int, folder: Path) -> dict[str, Any]:
    out = folder / f"{way.replace(' ', '-')}.parquet"
    answer: Any = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(
        target=measure, args=(way, records, out, answer)
    )
    process.start()
    result: dict[str, Any] = answer.get()
    process.join()
    result["bytes"] = out.stat().st_size
    result["table"] = pq.read_table(out)
    return result


def cli_harvest(url: str, out: Path, records: int) -> dict[str, float]:
    """`python -m harvester` into `out`: its wall and CPU seconds and peak RSS (MiB)."""
    raw = demo_config(url, out, workers=16, page_size=1_000)
    raw["output"]["checkpoint_every"] = 5
    config = out.with_suffix(".yaml")
    config.write_bytes(orjson.dumps(raw))  # JSON is YAML
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "harvester", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"FAILED: the harvest into {out} exited {process.returncode}")
    if out.suffix == ".parquet":
        ids = pq.read_table(out, columns=["id"]).column("id")
        if ids.to_pylist() != list(range(records)):
            raise SystemExit(f"FAILED: {out} does not hold records 0..{records - 1} in order")
    else:
        check_output(out, records)
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
    }


def whole_harvests(counts: list[int], folder: Path) -> None:
    results: dict[tuple[str, int], dict[str, float]] = {}
    for records in counts:
        with demo_process(["--records", str(records), "--max-page-size", "1000"]) as url:
            # Not counted: the demo API builds each record's bytes on first use, which makes
            # the first harvest of a fresh server the slowest.
            cli_harvest(url, folder / "warm-up.jsonl", records)
            (folder / "warm-up.jsonl").unlink()
            for fmt in ("jsonl", "parquet"):
                out = folder / f"items-{records}.{fmt}"
                results[fmt, records] = cli_harvest(url, out, records)
                out.unlink()
    print("Whole harvests of the demo API (python -m harvester; pages of 1,000, 16 workers):")
    print(f"  {'format':<8} {'records':>10} {'wall s':>7} {'rec/s':>9} {'CPU s':>7} {'RSS MiB':>8}")
    for (fmt, records), r in sorted(results.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        print(
            f"  {fmt:<8} {records:>10,} {r['wall']:7.2f} {records / r['wall']:9,.0f} "
            f"{r['cpu']:7.2f} {r['rss_mib']:8.0f}"
        )
    low, high = min(counts), max(counts)
    for fmt in ("jsonl", "parquet"):
        growth = results[fmt, high]["rss_mib"] / results[fmt, low]["rss_mib"]
        print(f"  {fmt}: peak RSS at {high:,} / at {low:,} = {growth:.3f}")
        if fmt == "parquet" and growth > 1.1:
            raise SystemExit("FAILED: Parquet's peak RSS grows more than 10% with the records")


def median_round(measures: list[dict[str, Any]]) -> dict[str, Any]:
    """The measure of median CPU time among `measures` (an odd number of rounds)."""
    return sorted(measures, key=lambda r: r["cpu"])[len(measures) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--cli", default="", help="record counts for whole harvests, e.g. 1e5,1e6")
    args = parser.parse_args()
    if args.cli:
        with tempfile.TemporaryDirectory() as folder:
            whole_harvests([int(float(n)) for n in args.cli.split(",")], Path(folder))
    with tempfile.TemporaryDirectory() as folder:
        # Interleaved rounds, each way's median round kept: on a shared machine a burst of
        # load during one measure would otherwise decide the ratio.
        rounds = [{way: run(way, args.records, Path(folder)) for way in WAYS} for _ in range(3)]
    results = {way: median_round([r[way] for r in rounds]) for way in WAYS}
    base = results["pyarrow direct"]
    print(f"{args.records:,} demo records to Parquet ({harvester_parquet.CODEC}), median of 3:")
    print(
        f"  {'':<20} {'CPU s':>7} {'wall s':>7} {'rec/s':>10} {'RSS MiB':>8} {'MB':>6} {'x CPU':>6}"
    )
    for way, r in results.items():
        print(
            f"  {way:<20} {r['cpu']:7.2f} {r['wall']:7.2f} {args.records / r['wall']:10,.0f} "
            f"{r['rss_mib'] - r['rss_before_mib']:8.0f} {r['bytes'] / 1e6:6.1f} "
            f"{r['cpu'] / base['cpu']:6.2f}"
        )
    print("  (RSS MiB: peak growth over the records held in memory before the measure)")
    ours = results["harvester"]
    if not ours["table"].equals(base["table"]):
        raise SystemExit("FAILED: harvester's Parquet rows differ from pyarrow's")
    if ours["cpu"] > 1.5 * base["cpu"]:
        raise SystemExit("FAILED: harvester's Parquet CPU time is over 1.5x pyarrow's")


if __name__ == "__main__":
    main()
