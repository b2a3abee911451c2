"""Crash test: SIGKILL the CLI at random moments, resume, repeat; the output must not change.

    python benchmarks/crash_test.py [--kills 25] [--records 50000] [--seed 1] [--style all]
    python benchmarks/crash_test.py --format all --style offset,cursor-windows --kills 10

`--format` (jsonl, jsonl.gz, jsonl.zst, csv, csv.gz, csv.zst, parquet, or all) runs each style
once per format: the output is `round-N.<format>`, and each finished output must hold the same
content as the uninterrupted harvest of that format (the same bytes for JSON Lines and CSV, the
same decompressed bytes for gzip and zstd, the same rows and schema for Parquet). The byte checks
of what a checkpoint vouches for apply as below to JSON Lines files (and every window spool);
for the other formats the file must hold at least the length the checkpoint vouches for, and
half the restarts find junk appended past it, for the resumed run to cut off.

The demo API runs in a process of its own on loopback, with latency and every kind of fault
(5xx, dropped connections, truncated bodies, 429 with a short Retry-After, 2 s tokens). For each
pagination style, `python -m harvester CONFIG` is started, killed with SIGKILL after a delay
drawn from a seeded RNG, and started again, until `--kills` kills have landed; the last run is
left to finish. The delays are spread over three moments: before the run's first checkpoint,
between checkpoints, and near the end. A draw that lands after the run has finished is no kill:
the harvest is checked and a new one begins into a new output file.

Records reach the files through a 1 MiB buffer, so a kill seldom leaves bytes on disk past the
last checkpoint: only when it lands between a flush and the checkpoint's rename, or after the
buffer filled up (never, for windows smaller than that). Half the restarts from a checkpoint
therefore append such bytes first, the records that follow and a torn one, for the resumed run
to cut off; the "(cut)" column counts the real ones.

Checked: every finished output is byte-identical to the records an uninterrupted run writes, no
checkpoint, .part or spool file is left behind, and at every restart the checkpoint vouches only
for bytes that are on disk and correct. The table compares the data requests the server answered
with the least a harvest needs (the rest: retries of injected faults, pages fetched again after a
kill, pages fetched ahead past the end); "1 run" is that overhead for one uninterrupted harvest.
Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's harvester, for the script and its children

import orjson  # noqa: E402
from common import demo_config, id_partition, served_requests  # noqa: E402

from harvester.checkpoint import checkpoint_path  # noqa: E402
from harvester.demo import expected_records  # noqa: E402
from harvester.demo.launch import demo_process  # noqa: E402
from harvester.output import lock_path  # noqa: E402
from harvester.sink import part_path  # noqa: E402
from harvester.writers.compress import decompress  # noqa: E402

PAGE_SIZE = 100
# Where kills land, as the files tell afterwards; the last is a draw that came too late.
MOMENTS = (
    "before the run's first checkpoint",
    "between checkpoints",
    "in the last 10%",
    "after the rename, before the checkpoint was removed",
)
FINISHED_FIRST = "the delay ran out after the harvest had finished: no kill, not counted"


@dataclass(frozen=True)
class Style:
    """One pagination style: the demo endpoint, the pagination section, how its files look."""

    path: str
    pagination: dict[str, Any]
    windows: bool = False  # chains: window 0 in the .part file, window k in .part.k

    def minimum_requests(self, records: int, parts: int) -> int:
        """The fewest data requests a harvest of `records` can make."""
        if self.windows:
            return sum(
                max(1, math.ceil((hi - lo) / PAGE_SIZE)) for lo, hi in bounds(records, parts)
            )
        pages = math.ceil(records / PAGE_SIZE)
        open_end = self.pagination.get("total") == "unknown"
        # An open end is found by a short page, or past a full one by an empty page (or a 404).
        return pages + (1 if open_end and records % PAGE_SIZE == 0 else 0)


def styles(records: int, parts: int) -> dict[str, Style]:
    partition = id_partition(records, parts)
    return {
        "offset": Style("/items", {"style": "offset", "total": "body:total"}),
        "offset-open-end": Style("/stream", {"style": "offset", "total": "unknown"}),
        "page-open-end": Style("/pages", {"style": "page", "total": "unknown"}),
        "cursor-windows": Style(
            "/cursor",
            {"style": "cursor", "next_cursor": "body:next_cursor", "partition": partition},
            windows=True,
        ),
        "link-windows": Style(
            "/link",
            {"style": "link", "next_url": "body:next", "partition": partition},
            windows=True,
        ),
    }


def bounds(records: int, parts: int) -> list[tuple[int, int]]:
    """The id windows of the partition, as harvester.chains computes them."""
    edges = [records * k // parts for k in range(parts + 1)]
    return list(zip(edges, edges[1:], strict=False))


class Expected:
    """The uninterrupted harvest's bytes, and where each record starts in them."""

    def __init__(self, records: int) -> None:
        lines = [orjson.dumps(r) + b"\n" for r in expected_records(records)]
        self.data = b"".join(lines)
        self.starts = [0]
        for line in lines:
            self.starts.append(self.starts[-1] + len(line))

    def span(self, first: int, count: int) -> bytes:
        return self.data[self.starts[first] : self.starts[first + count]]


@dataclass
class Row:
    """What one style's crash test saw."""

    style: str
    kills: int = 0
    resumes: int = 0
    cut_back: int = 0  # resumes that found data past what the checkpoint vouches for
    torn_tails: int = 0  # resumes that were given such data
    rounds: int = 0
    records: int = 0
    identical: bool = True
    lost: int = 0
    duplicated: int = 0
    requests: int = 0
    minimum: int = 0
    one_run: float = 0.0  # an uninterrupted harvest's requests over its minimum
    wall: float = 0.0
    moments: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OutputFormat:
    """One output format: its suffix and how to read a finished file's content for comparing."""

    suffix: str
    compression: str = "none"
    lines: bool = False  # plain JSON Lines: the byte checks of the checkpoint apply

    def content(self, path: Path) -> bytes:
        if self.suffix == ".parquet":
            return parquet_content(path)
        return decompress(path.read_bytes(), self.compression)


def parquet_content(path: Path) -> bytes:
    """Rows and schema of a Parquet output (a file, or a folder of part files), as bytes."""
    # The parquet extra's pyarrow, imported by name: only this format needs it.
    ds = importlib.import_module("pyarrow.dataset")

    table = ds.dataset(str(path), format="parquet").to_table()
    return str(table.schema).encode() + b"\n" + orjson.dumps(table.to_pylist(), default=str)


FORMATS = {
    "jsonl": OutputFormat(".jsonl", lines=True),
    "jsonl.gz": OutputFormat(".jsonl.gz", "gzip"),
    "jsonl.zst": OutputFormat(".jsonl.zst", "zstd"),
    "csv": OutputFormat(".csv"),
    "csv.gz": OutputFormat(".csv.gz", "gzip"),
    "csv.zst": OutputFormat(".csv.zst", "zstd"),
    "parquet": OutputFormat(".parquet"),
}


class Harness:
    """Starts, kills and checks harvester runs of one style against the demo API at `url`."""

    def __init__(
        self,
        args: argparse.Namespace,
        url: str,
        folder: Path,
        expected: Expected,
        fmt: OutputFormat = FORMATS["jsonl"],
    ):
        self.args, self.url, self.folder, self.expected = args, url, folder, expected
        self.format = fmt
        self.reference = expected.data  # the uninterrupted harvest's content, in this format
        self.startup = 0.5  # seconds from start to the first request; measured in calibrate()
        # Seconds whole harvests took after start-up (scaled up from resumed ones): random 429s
        # teach harvester a lower rate now and then, so one run says little.
        self.works: list[float] = []
        self._runs = 0

    def config(self, name: str, style: Style) -> Path:
        raw = demo_config(self.url, self.folder / "unused.jsonl", path=style.path)
        raw["pagination"] = {"page_size": PAGE_SIZE, **style.pagination}
        workers = self.args.workers
        # A fixed rate far above what the demo API serves: its 429s are random draws, not a
        # limit, and would teach harvester a rate that drops at each one (see Tuning), so that
        # a harvest took anything from 2 s to a minute.
        raw["concurrency"] = {
            "workers": workers,
            "max_buffered_pages": 4 * workers,
            "rate_limit": 10_000,
        }
        raw["retry"] = {"max_attempts": 12, "initial_backoff": 0.01, "max_backoff": 0.2}
        raw["output"]["checkpoint_every"] = self.args.checkpoint_every
        path = self.folder / f"{name}.yaml"
        path.write_bytes(orjson.dumps(raw))  # JSON is YAML
        return path

    def run(
        self, config: Path, output: Path, *extra: str, kill_after: float | None = None
    ) -> tuple[int, Path]:
        """Run the CLI to its end, or SIGKILL it after `kill_after` seconds: (exit code, log)."""
        self._runs += 1
        log = self.folder / "logs" / f"run-{self._runs}.log"
        log.parent.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "harvester", str(config), "--progress", "none"]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [*command, "--output", str(output), *extra], stdout=sink, stderr=subprocess.STDOUT
            )
        try:
            if kill_after is None:
                return process.wait(timeout=self.args.timeout), log
            try:
                return process.wait(timeout=kill_after), log
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                return process.wait(), log  # 0 if it finished meanwhile: then it was not killed
        except subprocess.TimeoutExpired:
            raise SystemExit(f"FAILED: a run hung for {self.args.timeout} s: {tail(log)}") from None
        finally:
            if process.poll() is None:  # the script itself was stopped
                process.kill()
                process.wait()

    def calibrate(self, config: Path, style: Style, row: Row) -> None:
        """An uninterrupted harvest: the reference timings, its request overhead, its output."""
        output = self.folder / f"calibration{self.format.suffix}"
        started = time.monotonic()
        code, log = self.run(config, output, "--max-records", "1")
        if code != 0:
            raise SystemExit(f"FAILED: the sample harvest exited {code}: {tail(log)}")
        self.startup = time.monotonic() - started
        before = served_requests(self.url)
        started = time.monotonic()
        code, log = self.run(config, output)
        if code != 0:
            raise SystemExit(f"FAILED: the uninterrupted harvest exited {code}: {tail(log)}")
        self.works = [max(0.1, time.monotonic() - started - self.startup)]
        minimum = style.minimum_requests(self.args.records, self.args.parts)
        row.one_run = (served_requests(self.url) - before) / minimum - 1
        if not self.format.lines:
            self.reference = self.format.content(output)
        self.check_output(output, row)
        remove(output)

    def delay(self, rng: random.Random, done: float) -> float:
        """Seconds until the kill of a run that starts with `done` (0..1) of the harvest
        committed: before its first checkpoint, between checkpoints, or near the end."""
        every, remaining = self.args.checkpoint_every, statistics.median(self.works) * (1 - done)
        moment = rng.choice(["early", "middle", "late"])
        if moment == "early":
            return rng.uniform(0, self.startup + every)
        if moment == "middle":
            return self.startup + rng.uniform(every, max(every, remaining))
        return self.startup + rng.uniform(0.8, 1.15) * remaining

    def crash(self, name: str, style: Style) -> Row:
        row = Row(name)
        rng = random.Random(f"{self.args.seed}:{name}")  # the same kills with or without --style
        config = self.config(name, style)
        self.calibrate(config, style, row)
        before, started = served_requests(self.url), time.monotonic()
        output = self.folder / f"round-{row.rounds}{self.format.suffix}"
        while True:
            at_start = checkpoint_of(output)
            if at_start is not None:
                row.resumes += 1
                self.check_checkpoint(output, at_start, style, row)
                if rng.random() < 0.5:
                    self.add_torn_tail(output, at_start, style)
                    row.torn_tails += 1
            # After a kill between the output's rename and the checkpoint's removal, the next
            # run clears the checkpoint and harvests again into the complete output (a kill of
            # that run would leave its partial files beside it): it is left to finish.
            settling = at_start is not None and output.exists()
            killing = row.kills < self.args.kills and not settling
            done = committed(at_start, self.args.records)
            kill_after = self.delay(rng, done) if killing else None
            began = time.monotonic()
            code, log = self.run(config, output, kill_after=kill_after)
            at_end = checkpoint_of(output)
            if code == -signal.SIGKILL and (at_end is not None or not output.exists()):
                row.kills += 1
                row.moments[moment_of(at_start, at_end, output, self.args)] += 1
                continue
            if code not in (0, -signal.SIGKILL):
                row.problems.append(f"a run exited {code}: {tail(log)}")
                break
            # The harvest is complete: its process exited, or was killed on its way out.
            if code == 0 and done < 0.5:
                self.works.append((time.monotonic() - began - self.startup) / (1 - done))
            row.rounds += 1
            row.records += self.args.records
            if killing:
                row.moments[FINISHED_FIRST] += 1
            if code == -signal.SIGKILL:
                # Killed after its checkpoint was removed and before its lock was: a lock left
                # by a dead run is by design (the next run takes it over), not a leftover.
                lock_path(output).unlink(missing_ok=True)
            self.check_output(output, row)
            remove(output)
            if row.kills >= self.args.kills:
                break
            output = self.folder / f"round-{row.rounds}{self.format.suffix}"
        row.wall = time.monotonic() - started
        row.requests = served_requests(self.url) - before
        row.minimum = row.rounds * style.minimum_requests(self.args.records, self.args.parts)
        return row

    def check_output(self, output: Path, row: Row) -> None:
        data = self.format.content(output)
        if data != self.reference:
            row.identical = False
            ids, garbled = ids_in(data) if self.format.lines else ([], 0)
            row.lost += self.args.records - len(set(ids) & set(range(self.args.records)))
            row.duplicated += len(ids) - len(set(ids))
            row.problems.append(
                f"{output.name} differs from the uninterrupted harvest"
                + (f"; {garbled} lines are no records" if garbled else "")
            )
        leftovers = [p.name for p in output.parent.glob(output.name + ".*")]
        if leftovers:
            row.problems.append(f"left behind: {', '.join(sorted(leftovers))}")

    def vouched(
        self, output: Path, checkpoint: dict[str, Any], style: Style
    ) -> list[tuple[Path, int, int, int]]:
        """Each file the checkpoint counts on: (path, first id, records, bytes) it vouches for."""
        part, sink = part_path(output), checkpoint["sink"]
        if not style.windows:
            return (
                [(part, 0, int(sink["records"]), int(sink["bytes"]))] if self.format.lines else []
            )
        windows = zip(bounds(self.args.records, self.args.parts), sink["chains"], strict=True)
        return [
            (part.with_name(f"{part.name}.{k}") if k else part, lo, c["records"], c["bytes"])
            for k, ((lo, _), c) in enumerate(windows)
            if c["pages"] and (k or self.format.lines)  # window 0: in the output's format
        ]

    def vouched_length(self, output: Path, checkpoint: dict[str, Any]) -> int | None:
        """The length the checkpoint vouches for in a file of another format than JSON Lines."""
        if self.format.lines:
            return None
        writer = checkpoint["sink"].get("writer") or {}
        return int(writer["bytes"]) if "bytes" in writer else None

    def check_checkpoint(
        self, output: Path, checkpoint: dict[str, Any], style: Style, row: Row
    ) -> None:
        """The checkpoint vouches only for bytes on disk, and those are the right ones."""
        beyond = False
        for path, first, records, length in self.vouched(output, checkpoint, style):
            if not path.exists():
                if part_path(output).exists() or not output.exists():
                    row.problems.append(f"{path.name} is gone, the checkpoint counts on it")
                continue  # finished, killed before removing the checkpoint
            with path.open("rb") as handle:
                held = handle.read(length)
                beyond = beyond or bool(handle.read(1))
            if held != self.expected.span(first, records):
                row.problems.append(
                    f"{path.name}: the checkpoint vouches for {records} records in {length} "
                    "bytes, the file holds something else"
                )
        length = self.vouched_length(output, checkpoint)
        part = part_path(output)
        if length is not None and part.exists():
            size = part.stat().st_size
            if size < length:
                row.problems.append(f"{part.name} holds {size} bytes, the checkpoint {length}")
            beyond = beyond or size > length
        row.cut_back += beyond

    def add_torn_tail(self, output: Path, checkpoint: dict[str, Any], style: Style) -> None:
        """Append what a kill between a flush and the checkpoint's rename leaves: the records
        that follow what the checkpoint vouches for, the last one torn."""
        for path, first, records, length in self.vouched(output, checkpoint, style):
            if path.exists():
                following = min(first + records + 3, self.args.records) - first - records
                with path.open("r+b") as handle:
                    handle.seek(max(length, path.stat().st_size))
                    handle.write(self.expected.span(first + records, following)[:-20])
        length, part = self.vouched_length(output, checkpoint), part_path(output)
        if length is not None and part.is_file():
            with part.open("r+b") as handle:  # a torn member, a torn row: bytes to cut off
                handle.seek(max(length, part.stat().st_size))
                handle.write(b"\x1f\x8b\x08\x00torn,row\r\n" * 3)


def remove(output: Path) -> None:
    if output.is_dir():  # a Parquet output rotated into a folder of part files
        shutil.rmtree(output)
    else:
        output.unlink()


def ids_in(data: bytes) -> tuple[list[int], int]:
    """The record ids in JSON Lines `data`, and how many lines hold no record."""
    ids, garbled = [], 0
    for line in data.splitlines():
        try:
            ids.append(int(orjson.loads(line)["id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            garbled += 1
    return ids, garbled


def tail(log: Path) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])


def checkpoint_of(output: Path) -> dict[str, Any] | None:
    try:
        checkpoint: dict[str, Any] = orjson.loads(checkpoint_path(output).read_bytes())
    except FileNotFoundError:
        return None
    return checkpoint


def committed(checkpoint: dict[str, Any] | None, records: int) -> float:
    """The share of the harvest a checkpoint describes as written."""
    if checkpoint is None:
        return 0.0
    sink = checkpoint["sink"]
    written = int(sink.get("records") or sum(c["records"] for c in sink.get("chains", [])))
    return min(1.0, written / records)


def moment_of(
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    output: Path,
    args: argparse.Namespace,
) -> str:
    """Where in the run the kill landed, as the files tell; it left a checkpoint or no output."""
    if output.exists():
        return MOMENTS[3]
    if after == before:
        return MOMENTS[0]
    if committed(after, args.records) >= 0.9:
        return MOMENTS[2]
    return MOMENTS[1]


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'style':<28} {'kills':>5} {'resumes':>7} {'rounds':>6} {'records':>9} "
        f"{'identical':>9} {'lost':>5} {'dup':>5} {'requests':>8} {'minimum':>8} "
        f"{'overhead':>8} {'1 run':>6} {'wall s':>7}"
    )
    print(header)
    for r in rows:
        overhead = r.requests / r.minimum - 1 if r.minimum else 0.0
        print(
            f"{r.style:<28} {r.kills:>5} {r.resumes:>7} {r.rounds:>6} {r.records:>9,} "
            f"{'yes' if r.identical else 'NO':>9} {r.lost:>5} {r.duplicated:>5} "
            f"{r.requests:>8,} {r.minimum:>8,} {overhead:>+8.0%} {r.one_run:>+6.0%} {r.wall:>7.1f}"
        )
    print()
    print("where the kills landed:")
    for number, moment in enumerate(MOMENTS, 1):
        print(f"  ({number}) {moment}")
    print(f"  (-) {FINISHED_FIRST}")
    print("  (cut) resumes from a checkpoint that found bytes on disk past it, to cut off")
    print("  (torn) resumes from a checkpoint given such bytes by this script, a torn record last")
    header = " ".join(f"{c:>4}" for c in ("(1)", "(2)", "(3)", "(4)", "(-)", "(cut)", "(torn)"))
    print(f"{'style':<28} {header}")
    for r in rows:
        counts = " ".join(f"{r.moments[m]:>4}" for m in (*MOMENTS, FINISHED_FIRST))
        print(f"{r.style:<28} {counts} {r.cut_back:>5} {r.torn_tails:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=25, help="SIGKILLs per style")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1, help="for the kill moments and the faults")
    parser.add_argument(
        "--style",
        default="all",
        help="all, or a comma-separated list of offset, offset-open-end, page-open-end, "
        "cursor-windows, link-windows (the last two split the ids into --parts windows)",
    )
    parser.add_argument("--latency", type=float, default=0.03, help="seconds per data request")
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--parts", type=int, default=8, help="windows of the chain styles")
    parser.add_argument("--checkpoint-every", type=float, default=0.2, metavar="S")
    parser.add_argument("--timeout", type=float, default=300, help="a run longer than this hung")
    parser.add_argument(
        "--format",
        default="jsonl",
        help=f"all, or a comma-separated list of {', '.join(FORMATS)} (all: every format but "
        "parquet, unless its writer is installed)",
    )
    args = parser.parse_args()
    formats = formats_of(args.format, parser)

    known = styles(args.records, args.parts)
    names = list(known) if args.style == "all" else args.style.split(",")
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"--style: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = {name: known[name] for name in names}
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    demo = [
        "--port=0",
        "--quiet",
        f"--records={args.records}",
        f"--latency={args.latency}",
        "--fault-rate=0.03",
        "--drop-rate=0.01",
        "--truncate-rate=0.01",
        "--throttle-rate=0.02",
        "--retry-after=0.05",
        "--token-lifetime=2",
        f"--seed={args.seed}",
    ]
    print(
        f"{args.records:,} records in pages of {PAGE_SIZE}, {args.latency * 1000:.0f} ms latency, "
        f"faults on, {args.workers} workers, a checkpoint every {args.checkpoint_every:g} s, "
        f"{args.kills} SIGKILLs per style, seed {args.seed}",
        flush=True,
    )
    expected = Expected(args.records)
    rows = []
    with demo_process(demo) as url, tempfile.TemporaryDirectory() as tmp:
        for format_name in formats:
            harness = harness_class(format_name)(
                args, url, Path(tmp), expected, FORMATS[format_name]
            )
            for name, style in chosen.items():
                label = name if formats == ["jsonl"] else f"{format_name} {name}"
                rows.append(harness.crash(name, style))
                rows[-1].style = label
                print(f"  {label}: done in {rows[-1].wall:.1f} s", file=sys.stderr, flush=True)
    print_table(rows)
    problems = list(dict.fromkeys(f"{r.style}: {p}" for r in rows for p in r.problems))
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        sys.exit(1)


def harness_class(format_name: str) -> type[Harness]:
    """Parquet's harness checks the spool's segments too (crash_parquet.py)."""
    if format_name == "parquet":
        harness: type[Harness] = importlib.import_module("crash_parquet").ParquetHarness
        return harness
    return Harness


def formats_of(chosen: str, parser: argparse.ArgumentParser) -> list[str]:
    """The formats --format names; all: those whose writer this checkout has."""
    if chosen != "all":
        names = chosen.split(",")
        unknown = [name for name in names if name not in FORMATS]
        if unknown:
            parser.error(f"--format: unknown {', '.join(unknown)}; known: {', '.join(FORMATS)}")
        return names
    from harvester.errors import ConfigError  # noqa: PLC0415
    from harvester.writers import writer_class  # noqa: PLC0415

    available = []
    for name in FORMATS:
        try:
            writer_class(name.split(".")[0])
        except (ConfigError, ImportError):
            continue
        available.append(name)
    return available


if __name__ == "__main__":
    main()
