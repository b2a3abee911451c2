"""Parquet through the real CLI and runner against the demo API: exact rows, resumes, rotation."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from harvester.demo import DemoServer, expected_records, run_demo
from harvester.errors import Interrupted
from harvester.runner import run
from harvester.stats import Stats
from harvester.stop import Stop

from .conftest import (
    HANG,
    assert_one_clear_line,
    faulty_demo,
    make_config,
    no_wait_policy,
    run_cli,
    write_config,
)
from .test_resume import StopAfter

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

DEMO_TYPES = {
    "id": "int64",
    "name": "string",
    "value": "int64",
    "created_at": "string",  # as sent, never a timestamp
    "tags": "list<element: string>",
}


def types_of(schema: Any) -> dict[str, str]:
    return {f.name: str(f.type) for f in schema}


async def test_the_cli_writes_the_demo_api_to_parquet(demo: DemoServer, tmp_path: Path) -> None:
    out = tmp_path / "out" / "items.parquet"
    config = write_config(tmp_path, demo.url, output__path=str(out))
    result = await run_cli(str(config))
    assert result.code == 0, result.output
    table = pq.read_table(out)
    assert types_of(table.schema) == DEMO_TYPES
    assert table.to_pylist() == expected_records(1_000)
    assert sorted(p.name for p in out.parent.iterdir()) == ["items.parquet"]


async def test_the_cli_rotates_parts_with_a_manifest(demo: DemoServer, tmp_path: Path) -> None:
    out = tmp_path / "out" / "items.parquet"
    config = write_config(
        tmp_path, demo.url, output__path=str(out), output__max_records_per_file=300
    )
    result = await run_cli(str(config))
    assert result.code == 0, result.output
    manifest = orjson.loads((out / "_manifest.json").read_bytes())
    assert [f["records"] for f in manifest["files"]] == [300, 300, 300, 100]
    assert pq.read_table(out).to_pylist() == expected_records(1_000)
    assert out.stat().st_mode & 0o777 == 0o700  # as private as the part files in it
    assert sorted(p.name for p in out.parent.iterdir()) == ["items.parquet"]


async def test_parquet_to_a_stream_is_refused(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url, output__format="parquet")
    result = await run_cli(str(config), "--output", "-")
    assert result.code == 2
    assert_one_clear_line(result, "output.format", "stream")
    assert demo.stats.data_requests == 0


async def test_without_pyarrow_the_run_says_how_to_install_it(
    demo: DemoServer, tmp_path: Path
) -> None:
    hidden = tmp_path / "hide"
    hidden.mkdir()
    # A pyarrow that cannot be imported, first on the path: as if the extra were not installed.
    (hidden / "pyarrow.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyarrow'\", name='pyarrow')\n"
    )
    config = write_config(tmp_path, demo.url, output__path=str(tmp_path / "items.parquet"))
    paths = [str(hidden), os.environ.get("PYTHONPATH", ""), *sys.path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    result = await run_cli(str(config), env=env)
    assert result.code == 2
    assert_one_clear_line(result, "output.format", "pip install 'harvester[parquet]'")
    assert demo.stats.data_requests == 0


@pytest.mark.parametrize("per_file", [None, 700])
async def test_stopped_twice_then_resumed_the_same_rows_and_schema(
    tmp_path: Path, per_file: int | None
) -> None:
    records = 3_000
    whole, resumed = tmp_path / "whole.parquet", tmp_path / "resumed.parquet"
    output = {"max_records_per_file": per_file} if per_file else {}
    async with run_demo(faulty_demo(records, token_lifetime=3600)) as demo:

        async def harvest(out: Path, stop: Stop | None = None, stats: Stats | None = None) -> None:
            sections = {
                "concurrency": {"workers": 4, "max_buffered_pages": 8},
                "output": {"path": str(out), "checkpoint_every": 0.01, **output},
            }
            config = make_config(demo.url, out, **sections)
            async with asyncio.timeout(HANG):
                await run(config, stats=stats, stop=stop, policy=no_wait_policy(max_attempts=20))

        await harvest(whole)
        for pages in (3, 14):
            stats = Stats()
            with pytest.raises(Interrupted):
                await harvest(resumed, StopAfter(stats, pages), stats)
            assert not resumed.exists()
        await harvest(resumed)
    a, b = pq.read_table(whole), pq.read_table(resumed)
    assert a.to_pylist() == b.to_pylist() == expected_records(records)
    assert a.schema.equals(b.schema, check_metadata=True)
    assert types_of(a.schema) == DEMO_TYPES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resumed.parquet", "whole.parquet"]


async def test_fresh_removes_the_spool_of_a_stopped_run(tmp_path: Path) -> None:
    out = tmp_path / "items.parquet"
    async with run_demo(faulty_demo(2_000, token_lifetime=3600)) as demo:
        sections = {"output": {"path": str(out), "checkpoint_every": 0.01}}
        config = make_config(demo.url, out, **sections)
        stats = Stats()
        with pytest.raises(Interrupted):
            async with asyncio.timeout(HANG):
                await run(config, stats=stats, stop=StopAfter(stats, 5), policy=no_wait_policy())
        assert (tmp_path / "items.parquet.part").is_dir()
        async with asyncio.timeout(HANG):
            stats = await run(config, fresh=True, policy=no_wait_policy(max_attempts=20))
    assert stats.resumed_records == 0
    assert pq.read_table(out).to_pylist() == expected_records(2_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.parquet"]
