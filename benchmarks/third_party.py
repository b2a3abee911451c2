"""Harvest API servers somebody else wrote, and check every file against what the server serves.

    make third-party                       # installs the servers once, then runs everything
    .venv/bin/python benchmarks/third_party.py [--only NAME[,NAME]] [--case TEXT] [--records N]

The servers (json-server 0.17 and 1.0 beta, FastAPI with fastapi-pagination, Django REST
Framework, datasette, flask-smorest) live in benchmarks/.third_party/ (a virtualenv and
node_modules of their own, installed by `make third-party`, never into .venv). Each is started on
a free loopback port with a seeded dataset: N records with an integer above 2**64, a decimal of
22 significant digits, doubles that need 17 digits, non-ASCII text and escapes, where the
framework can serve them. Then, for each case, the real CLI runs with `auth: {type: none}`:

    .venv/bin/python -m harvester cfg.yaml --stats-json stats.json --progress none

The expected file is what the server serves when a plain sequential client (urllib) asks for
everything, parsed Decimal-exact (integers of any size, every digit of a decimal). The output is
parsed the same way. Records are told apart by their `seq` field (else by their whole content).

columns: exit (harvester's exit code); written/expected (records); dup (records written more
than once); miss (records not written); alt (records written with another value: 1 and 1.0
differ, 1.0 and 1.00 do not, key order does not matter); order (the output's order is the
server's); verdict:
    ok         exit 0 and exactly the dataset
    VIOLATION  exit 0 and a wrong file: the invariant broken (this script then exits 1)
    LEFT-FILE  a failure that still left a file at the output path (exits 1 too)
    HANG       no exit within --timeout seconds: killed (exits 1 too)
    FAIL-BUG   a failure where the server and the config are fine: harvester should succeed
    fail-ok    a failure where it may fail: the server refuses the page size (422/400), or the
               config does not match the server; the line must say why
    pending    a failure saying that a feature being added now is missing (a key unknown)
Each run's config, stderr and stats are kept in benchmarks/.third_party/runs/<server>/<case>/,
and every result in benchmarks/.third_party/results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from third_party_cases import (
    DEFAULT_RECORDS,
    SERVERS,
    STATE,
    Case,
    Server,
    cases_of,
    dumps_exact,
    loads_exact,
    seeded_records,
)

ROOT = Path(__file__).resolve().parent.parent
HARVESTER_PY = ROOT / ".venv" / "bin" / "python"


# --- running a server and a harvest --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running(server: Server, work: Path, records: list[dict[str, Any]]) -> Iterator[str]:
    """The server started in a process of its own on a free loopback port; its base URL."""
    server.prepare(work, records)
    port = free_port()
    log = (work / "server.log").open("wb")
    process = subprocess.Popen(
        server.argv(work, port),
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, base + server.ready, work / "server.log")
        yield base
    finally:
        process.terminate()  # by its pid: only the process this script started
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the server exited with {process.returncode}:\n{tail}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2),  # noqa: S310 (loopback)
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer {url} within {timeout:.0f} s")


@dataclass
class Result:
    server: str
    case: str
    exit: int | None  # None: killed after the timeout
    written: int
    expected: int
    duplicates: int
    missing: int
    altered: int
    in_order: bool
    verdict: str
    seconds: float
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    example: str = ""  # the first altered value, as sent and as written
    note: str = ""


def harvest(
    case: Case, base: str, work: Path, reference: list[Any], args: argparse.Namespace
) -> Result:
    """Run the CLI on one case and judge its output against the reference."""
    run_dir = work / "runs" / case.name.replace("/", "_")
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    out = run_dir / "out.jsonl"
    cfg = run_dir / "cfg.yaml"
    text = yaml.safe_dump(case.config(base, out), sort_keys=False, allow_unicode=True)
    cfg.write_text(text, encoding="utf-8")
    argv = [str(HARVESTER_PY), *cli(args.src), str(cfg), "--progress", "none"]
    argv += ["--stats-json", str(run_dir / "stats.json")]
    started = time.monotonic()
    with (run_dir / "stderr.txt").open("wb") as err, (run_dir / "stdout.txt").open("wb") as std:
        process = subprocess.Popen(
            argv,
            cwd=args.src,
            env={**os.environ, "PYTHONPATH": str(args.src)},
            stdout=std,
            stderr=err,
            start_new_session=True,
        )
        timeout = case.style.timeout or args.timeout
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()  # by its pid
            process.wait(timeout=10)
            code = None
    seconds = time.monotonic() - started
    stats = read_stats(run_dir / "stats.json")
    error = str(stats.get("error") or last_line(run_dir / "stderr.txt")) if code != 0 else ""
    if code is None:
        error = f"killed after {timeout:.0f} s: {hung(out)}"
    result = judge(case, reference, out, code, error)
    result.seconds = seconds
    result.warnings = list(stats.get("warnings") or [])
    return result


# .venv holds this checkout as an editable install, whose import hook would fill in any module
# missing from another --src folder with this checkout's: it is taken out first.
ONLY_SRC = (
    "import runpy, sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path "
    "if not getattr(f, '__module__', '').startswith('__editable__')]; "
    "runpy.run_module('harvester', run_name='__main__', alter_sys=True)"
)


def cli(src: Path) -> list[str]:
    """How to start harvester's CLI from the folder `src` (run with cwd and PYTHONPATH there)."""
    return ["-m", "harvester"] if src.resolve() == ROOT else ["-c", ONLY_SRC]


def hung(out: Path) -> str:
    """What a killed run had written so far; a large .part is removed (it may grow without end)."""
    part = out.with_name(out.name + ".part")
    if not part.exists():
        return "nothing written"
    size = part.stat().st_size
    with part.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    if size > 10_000_000:
        part.unlink()
    return f"{lines:,} records ({size / 1e6:,.0f} MB) in {part.name} and growing"


def read_stats(path: Path) -> dict[str, Any]:
    try:
        stats: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return stats
    except (OSError, ValueError):
        return {}


def last_line(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


# --- judging a file --------------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """A value to compare: 1 and 1.0 differ, 1.0 and 1.00 do not, key order does not matter."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, Decimal):
        return ("number", value)
    if isinstance(value, list):
        return tuple(canonical(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, canonical(v)) for k, v in value.items()))
    raise TypeError(f"not a JSON value: {value!r}")


def identity(record: Any) -> Any:
    """Which record this is: its seq, else its whole content."""
    if isinstance(record, dict) and isinstance(record.get("seq"), int):
        return record["seq"]
    return canonical(record)


def read_output(path: Path) -> list[Any]:
    records: list[Any] = []
    with path.open("rb") as handle:
        for line in handle:
            try:
                records.append(loads_exact(line))
            except ValueError:
                records.append({"<not JSON>": line.decode("utf-8", "replace")[:80]})
    return records


def judge(case: Case, reference: list[Any], out: Path, code: int | None, error: str) -> Result:
    written = read_output(out) if out.exists() else []
    expected = {identity(r): r for r in reference}
    counts = Counter(identity(r) for r in written)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    missing = sum(1 for key in expected if key not in counts)
    altered_pairs = [
        (expected[key], r)
        for r in written
        if (key := identity(r)) in expected and canonical(r) != canonical(expected[key])
    ]
    altered = len({identity(sent) for sent, _ in altered_pairs})
    exact = [canonical(r) for r in written] == [canonical(r) for r in reference]
    in_order = [identity(r) for r in written] == [identity(r) for r in reference]
    return Result(
        server=case.server,
        case=case.name,
        exit=code,
        written=len(written),
        expected=len(reference),
        duplicates=duplicates,
        missing=missing,
        altered=altered,
        in_order=in_order,
        verdict=verdict(case, code, error, exact=exact, records_ok=in_order, left=out.exists()),
        seconds=0.0,
        error=error,
        example=first_difference(*altered_pairs[0]) if altered_pairs else "",
        note=case.style.note,
    )


def verdict(
    case: Case, code: int | None, error: str, *, exact: bool, records_ok: bool, left: bool
) -> str:
    if code is None:
        return "HANG"
    if code == 0:
        if exact:
            return "ok"
        # Which promise broke: the records themselves (lost, twice, out of order) or a value.
        return "VIOLATION" + (" values" if records_ok else " records")
    if left:
        return "LEFT-FILE"
    if case.style.pending and case.style.pending in error:
        return "pending"
    return "fail-ok" if case.may_fail else "FAIL-BUG"


def first_difference(sent: Any, written: Any) -> str:
    """The first field that differs: `seq 7 big: 18446744073709551617 -> 1.8446744073709552e+19`."""
    if isinstance(sent, dict) and isinstance(written, dict):
        for key in sent:
            if canonical(sent.get(key)) != canonical(written.get(key)):
                was, now = dumps_exact(sent.get(key)), dumps_exact(written.get(key))
                return f"seq {sent.get('seq')} {key}: {was} -> {now}"
    return f"{sent!r} -> {written!r}"


# --- what each server serves of the seeded values -------------------------------------------------


def fidelity(seeded: list[dict[str, Any]], served: list[Any]) -> list[str]:
    """How the server's answers differ from the dataset it was seeded with (its own doing)."""
    lines: list[str] = []
    if len(served) != len(seeded):
        lines.append(f"serves {len(served)} records of {len(seeded)} seeded")
    by_seq = {r.get("seq"): r for r in served if isinstance(r, dict)}
    changes: dict[str, list[str]] = {}
    for record in seeded:
        other = by_seq.get(record["seq"], {})
        for key, value in record.items():
            if canonical(loads_exact(dumps_exact(value))) != canonical(other.get(key)):
                changes.setdefault(key, []).append(
                    f"{dumps_exact(value)} -> {dumps_exact(other.get(key))}"
                )
    for key, examples in changes.items():
        shown = "; ".join(examples[:3])
        lines.append(f"{key}: {len(examples)} values served otherwise, e.g. {shown}")
    return lines or ["serves every seeded value exactly"]


# --- the report -------------------------------------------------------------------------------

# Verdicts that fail this script: the invariant broken, or a run that never ends (prefixes).
BAD = ("VIOLATION", "LEFT-FILE", "HANG")


def table(results: list[Result]) -> str:
    head = (
        f"{'server':<17} {'case':<56} {'exit':>4} {'written':>7} {'expect':>6} "
        f"{'dup':>4} {'miss':>5} {'alt':>4} {'order':>5} {'wall s':>6}  verdict"
    )
    rows = [head]
    for r in results:
        code = "kill" if r.exit is None else str(r.exit)
        rows.append(
            f"{r.server:<17} {r.case:<56} {code:>4} {r.written:>7} {r.expected:>6} "
            f"{r.duplicates:>4} {r.missing:>5} {r.altered:>4} {'yes' if r.in_order else 'no':>5} "
            f"{r.seconds:>6.1f}  {r.verdict}"
        )
    return "\n".join(rows)


def details(results: list[Result]) -> str:
    lines: list[str] = []
    for r in results:
        if r.verdict == "ok" and not r.warnings:
            continue
        lines.append(f"{r.server} {r.case}: {r.verdict}")
        if r.note:
            lines.append(f"    server: {r.note}")
        if r.example:
            lines.append(f"    altered: {r.example}")
        if r.error:
            lines.append(f"    error:   {r.error}")
        lines.extend(f"    warning: {w}" for w in r.warnings)
    return "\n".join(lines)


def run_server(
    server: Server, args: argparse.Namespace, seeded: list[dict[str, Any]]
) -> list[Result]:
    cases = [c for c in cases_of(server) if not args.case or args.case in c.name]
    if not cases:
        return []
    if not server.installed.exists():
        print(f"\n{server.name}: not installed (run `make third-party`), skipped", flush=True)
        return []
    work = STATE / "runs" / server.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results: list[Result] = []
    started = time.monotonic()
    with running(server, work, seeded) as base:
        startup = time.monotonic() - started
        reference = server.reference(base)
        print(f"\n{server.title}\n  {base}, up in {startup:.1f} s", flush=True)
        for line in fidelity(seeded, reference):
            print(f"  {line}", flush=True)
        references: dict[Callable[[str], list[Any]] | None, list[Any]] = {None: reference}
        for case in cases:
            own = case.style.reference
            if own not in references:
                references[own] = own(base) if own else reference
            result = harvest(case, base, work, references[own], args)
            print(f"  {result.verdict:<9} {case.name} exit {result.exit}", flush=True)
            results.append(result)
    return results


def describe(src: Path) -> str:
    """Which harvester runs: the commit, `-dirty` with uncommitted changes, else the folder."""
    try:
        described = subprocess.run(
            ["git", "-C", str(src), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(src)
    return f"{src} at {described}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="servers to run, comma-separated (names or parts of them)")
    parser.add_argument("--case", help="only the cases whose name contains this text")
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--timeout", type=float, default=120, help="seconds per harvest")
    parser.add_argument(
        "--src",
        type=Path,
        default=ROOT,
        help="the folder holding the harvester package to run (default: this checkout); "
        "e.g. a `git archive` of another commit, to compare",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    if not HARVESTER_PY.exists():
        raise SystemExit(f"{HARVESTER_PY} is missing: run `make install` first")
    seeded = seeded_records(args.records)
    servers = [make(args.records) for make in SERVERS]
    if args.only:
        wanted = args.only.split(",")
        servers = [s for s in servers if any(w in s.name for w in wanted)]
    if args.list:
        for server in servers:
            print("\n".join(f"{server.name:<17} {c.name}" for c in cases_of(server)))
        return 0
    harvester = describe(args.src)
    print(f"harvester: {harvester}", flush=True)
    started = time.monotonic()
    results: list[Result] = []
    for server in servers:
        results.extend(run_server(server, args, seeded))
    STATE.mkdir(exist_ok=True)
    document = {"harvester": harvester, "results": [asdict(r) for r in results]}
    (STATE / "results.json").write_text(
        json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    print(f"\n{table(results)}\n\n{details(results)}")
    verdicts = Counter(r.verdict for r in results)
    summary = ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items()))
    print(f"\n{len(results)} cases in {time.monotonic() - started:.0f} s: {summary}")
    bad = [r for r in results if r.verdict.startswith(BAD)]
    if bad:
        print(f"FAILED: {len(bad)} cases broke the invariant (exit 0 with a wrong file) or hung")
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
