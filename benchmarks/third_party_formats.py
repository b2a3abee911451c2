"""Every output format against API servers somebody else wrote, each file checked value by value.

    make third-party-formats                # after `make third-party` installed the servers
    .venv/bin/python benchmarks/third_party_formats.py [--only NAME[,NAME]] [--records N]

For each third-party server of benchmarks/third_party.py (json-server, FastAPI with
fastapi-pagination, Django REST Framework, datasette, flask-smorest), one case per pagination
style it offers (16 workers, its first page size and total), harvested by the real CLI once per
format. The JSON Lines run is judged by third_party.py's own rules against what a plain
sequential client gets from the server (every record once, in order, Decimal-exact); each other
format is then held to that verified file:

    jsonl.gz, jsonl.zst  the decompressed bytes are the JSON Lines file's bytes
    csv, csv.gz          each row is the record under harvester's CSV rules, rendered here
                         independently: dotted columns, a number as the JSON text the server
                         sent, true/false, arrays and {} as JSON, null an empty cell and "" a
                         quoted empty one (told apart on the raw line, not by csv.reader)
    parquet              each row is the record: an integer the same integer, a double the
                         number the server wrote (its shortest repr is that number), text the
                         same text; a column of values no one Parquet type holds exactly
                         (several types, beyond 64 bits, digits a double drops) holds each
                         value's JSON text (field metadata harvester: json), read back as JSON

Exits 1 if any file is not the dataset, or any run failed.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from third_party import HARVESTER_PY, ROOT, judge, running
from third_party_cases import DEFAULT_RECORDS, SERVERS, STATE, Case, cases_of, seeded_records

FORMATS = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".csv", ".csv.gz", ".parquet")


class Number(str):
    """A JSON number kept as the text the file holds."""


def raw_records(path: Path) -> list[dict[str, Any]]:
    """The JSON Lines file's records, every number as its text (a Number)."""
    with path.open("rb") as handle:
        return [json.loads(line, parse_float=Number, parse_int=Number) for line in handle]


def run(case: Case, base: str, folder: Path, suffix: str) -> tuple[int, Path, str]:
    """The CLI on `case` into out<suffix>: (exit code, output path, last stderr line)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"out{suffix}"
    cfg = folder / f"cfg{suffix}.yaml"
    cfg.write_text(yaml.safe_dump(case.config(base, out), sort_keys=False), encoding="utf-8")
    argv = [str(HARVESTER_PY), "-m", "harvester", str(cfg), "--progress", "none"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    return done.returncode, out, lines[-1] if lines else ""


# --- CSV, rendered independently ------------------------------------------------------------


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    cells: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and value:
            cells.update(flatten(value, f"{prefix}{key}."))
        else:
            cells[f"{prefix}{key}"] = value
    return cells


def cell(value: Any) -> str | None:
    """The cell's text; None for null (an unquoted empty cell)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Number):
        return str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def check_csv(path: Path, records: list[dict[str, Any]]) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        text = handle.read().decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    if len(body) != len(records):
        return f"{len(body)} rows for {len(records)} records"
    raw_lines = text.split("\r\n")[1:]
    for index, (row, record) in enumerate(zip(body, records, strict=True)):
        cells = flatten(record)
        if set(cells) - set(header):
            return f"row {index}: fields {sorted(set(cells) - set(header))} not in the header"
        expected = [cell(cells.get(name)) for name in header]
        if row != [e or "" for e in expected]:
            return f"row {index}: {row!r} is not {expected!r}"
        # null and "" look alike to csv.reader: on the raw line, "" must be quoted, null not.
        empties = sum(1 for e in expected if e == "")
        if empties and raw_lines[index].count('""') < empties:
            return f"row {index}: an empty string is not written quoted"
    return ""


# --- Parquet ---------------------------------------------------------------------------------


def same_value(sent: Any, written: Any) -> bool:
    if isinstance(sent, Number):
        if isinstance(written, Number):  # from a JSON text column: the same text
            return str(written) == str(sent)
        if isinstance(written, bool) or not isinstance(written, int | float):
            return False
        if isinstance(written, int):
            return "." not in sent and "e" not in sent.lower() and int(sent) == written
        return Decimal(repr(written)) == Decimal(sent)
    if isinstance(sent, dict):
        if not isinstance(written, dict):
            return False
        keys = set(sent) | set(written)
        return all(same_value(sent.get(k), written.get(k)) for k in keys)
    if isinstance(sent, list):
        return (
            isinstance(written, list)
            and len(sent) == len(written)
            and all(map(same_value, sent, written))
        )
    return bool(sent == written)


def check_parquet(path: Path, records: list[dict[str, Any]]) -> str:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    # A column of values no one Parquet type keeps (several types, numbers beyond 64 bits or a
    # double) holds each value's JSON text, marked in its field metadata: read it back as JSON.
    as_json = [f.name for f in table.schema if (f.metadata or {}).get(b"harvester") == b"json"]
    rows = table.to_pylist()
    for row in rows:
        for name in as_json:
            if row[name] is not None:
                row[name] = json.loads(row[name], parse_float=Number, parse_int=Number)
    if len(rows) != len(records):
        return f"{len(rows)} rows for {len(records)} records"
    for index, (row, record) in enumerate(zip(rows, records, strict=True)):
        if not same_value(record, row):
            return f"row {index}: {row!r} is not {record!r}"
    return ""


def check(suffix: str, out: Path, jsonl: Path) -> str:
    """'' if `out` holds what the verified JSON Lines file holds, else the first difference."""
    if suffix == ".jsonl.gz":
        same = gzip.decompress(out.read_bytes()) == jsonl.read_bytes()
        return "" if same else "decompressed bytes differ"
    if suffix == ".jsonl.zst":
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(out.open("rb")) as reader:
            same = reader.read() == jsonl.read_bytes()
        return "" if same else "decompressed bytes differ"
    records = raw_records(jsonl)
    if suffix in (".csv", ".csv.gz"):
        return check_csv(out, records)
    return check_parquet(out, records)


def cases(server: Any) -> list[Case]:
    """One case per style: 16 workers, the style's first total and page size."""
    chosen: dict[str, Case] = {}
    for case in cases_of(server):
        if case.workers == 16 and case.buffered is None:
            chosen.setdefault(case.style.name, case)
    return list(chosen.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="servers to run, comma-separated (names or parts of them)")
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    args = parser.parse_args()
    seeded = seeded_records(args.records)
    servers = [make(args.records) for make in SERVERS]
    if args.only:
        servers = [s for s in servers if any(w in s.name for w in args.only.split(","))]
    rows: list[tuple[str, str, str]] = []
    for server in servers:
        if not server.installed.exists():
            print(f"{server.name}: not installed (run `make third-party`), skipped")
            continue
        work = STATE / "formats" / server.name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        with running(server, work, seeded) as base:
            reference = server.reference(base)
            for case in cases(server):
                folder = work / case.name.replace("/", "_")
                code, jsonl, error = run(case, base, folder, ".jsonl")
                verdict = judge(
                    case,
                    case.style.reference(base) if case.style.reference else reference,
                    jsonl,
                    code,
                    error,
                ).verdict
                results = {".jsonl": verdict if code == 0 else f"{verdict}: {error}"}
                for suffix in FORMATS[1:]:
                    if code != 0 or verdict != "ok":
                        results[suffix] = "-"
                        continue
                    got, out, why = run(case, base, folder, suffix)
                    results[suffix] = (
                        f"exit {got}: {why}" if got else check(suffix, out, jsonl) or "ok"
                    )
                for suffix, result in results.items():
                    rows.append((f"{server.name} {case.name}", suffix, result))
                line = "  ".join(f"{s} {r}" for s, r in results.items())
                print(f"{server.name:<16} {case.name:<36} {line}", flush=True)
    bad = [r for r in rows if r[2] not in ("ok", "-") and not r[2].startswith("fail-ok")]
    print(f"\n{len(rows)} files over {len({r[0] for r in rows})} cases: {len(bad)} not the dataset")
    for name, suffix, result in bad:
        print(f"  {name} {suffix}: {result}")
    return 1 if bad else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
