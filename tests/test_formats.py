"""Output formats end to end: the real CLI against the demo API, resumes, streams."""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from harvester.demo import DemoServer, expected_records, run_demo
from harvester.errors import Interrupted
from harvester.stats import Stats
from harvester.writers.compress import decompress

from .conftest import assert_one_clear_line, expected_bytes, faulty_demo, run_cli, write_config
from .test_resume import StopAfter, checkpoint_of, config_for, harvest

SUFFIXES = [".jsonl", ".jsonl.gz", ".jsonl.zst", ".csv", ".csv.gz", ".csv.zst"]


def expected_csv(count: int) -> bytes:
    """The demo API's first `count` records as the CSV writer writes them."""
    lines = ["id,name,value,created_at,tags"]
    for r in expected_records(count):
        tags = '"' + orjson.dumps(r["tags"]).decode().replace('"', '""') + '"'
        lines.append(f"{r['id']},{r['name']},{r['value']},{r['created_at']},{tags}")
    return ("\r\n".join(lines) + "\r\n").encode()


def expected_content(suffix: str, count: int) -> bytes:
    return expected_csv(count) if ".csv" in suffix else expected_bytes(count)


def content(path: Path) -> bytes:
    compression = {"gz": "gzip", "zst": "zstd"}.get(path.name.rsplit(".", 1)[-1], "none")
    return decompress(path.read_bytes(), compression)


@pytest.mark.parametrize("suffix", SUFFIXES)
async def test_the_cli_writes_each_format_its_suffix_names(
    demo: DemoServer, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"items{suffix}"
    config = write_config(tmp_path, demo.url, output__path=str(out))
    result = await run_cli(str(config), "--progress", "none")
    assert result.code == 0, result.stderr
    assert content(out) == expected_content(suffix, 1_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", out.name]


async def test_csv_read_back_by_python_s_csv_module(demo: DemoServer, tmp_path: Path) -> None:
    out = tmp_path / "items.csv"
    config = write_config(tmp_path, demo.url, output__path=str(out))
    assert (await run_cli(str(config), "--progress", "none")).code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert [int(row["id"]) for row in rows] == list(range(1_000))
    assert orjson.loads(rows[1]["tags"]) == expected_records(2)[1]["tags"]


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("jsonl", ".jsonl"), ("csv", ".csv.gz"), ("csv", ".csv.zst")]
)
async def test_stdout_streams_each_format_to_a_pipe(
    demo: DemoServer, tmp_path: Path, fmt: str, suffix: str
) -> None:
    compression = {".csv.gz": "gzip", ".csv.zst": "zstd"}.get(suffix, "none")
    config = write_config(
        tmp_path, demo.url, output__path="-", output__format=fmt, output__compression=compression
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "harvester", str(config), "--progress", "none"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err
    assert decompress(out, compression) == expected_content(suffix, 1_000)
    assert b"a stream cannot be resumed" in err and b"records      1,000" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no checkpoint


async def test_a_reader_that_stops_early_ends_the_run_with_one_line(
    demo: DemoServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, demo.url, output__path="-")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "harvester", str(config), "--progress", "none"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    first = await process.stdout.readline()  # `| head -1`: one line, then the reader is gone
    process.stdout.feed_eof()
    transport = process._transport  # noqa: SLF001 (closing only our end of the pipe)
    pipe = transport.get_pipe_transport(1)
    assert pipe is not None
    pipe.close()
    err = await asyncio.wait_for(process.stderr.read(), timeout=60)
    await process.wait()
    assert first == expected_bytes(1)
    assert process.returncode == 1
    assert b"Traceback" not in err
    assert b"the reader closed the stream" in err


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".csv", ".csv.zst"])
@pytest.mark.parametrize("style", ["offset", "cursor-partitioned"])
async def test_stopped_twice_then_resumed_each_format_matches_an_uninterrupted_run(
    tmp_path: Path, suffix: str, style: str
) -> None:
    out = tmp_path / f"items{suffix}"
    records = 2_000
    async with run_demo(faulty_demo(records, token_lifetime=3600)) as demo:
        config = config_for(style, demo.url, out)
        if style == "cursor-partitioned":
            config = config_for(style, demo.url, out, pagination={**_partition(records)})
        for pages in (3, 9):
            stats = Stats()
            with pytest.raises(Interrupted):
                await harvest(config, stats, stop=StopAfter(stats, pages))
            saved = checkpoint_of(out)["sink"]
            assert saved["format"] == ("csv" if ".csv" in suffix else "jsonl")
        await harvest(config, Stats())
    assert content(out) == expected_content(suffix, records)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def _partition(records: int) -> dict[str, Any]:
    return {
        "partition": {
            "param_from": "id_from",
            "param_to": "id_to",
            "start": 0,
            "end": records,
            "parts": 4,
        }
    }


async def test_a_resume_in_another_format_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "items"
    async with run_demo(faulty_demo(2_000, token_lifetime=3600)) as demo:
        config = config_for("offset", demo.url, out, output={"format": "csv"})
        stats = Stats()
        with pytest.raises(Interrupted):
            await harvest(config, stats, stop=StopAfter(stats, 3))
        again = config_for("offset", demo.url, out, output={"format": "jsonl"})
        with pytest.raises(Exception, match="written as csv, and jsonl is configured now"):
            await harvest(again, Stats())


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"output__path": "x.jsonl", "output__format": "csv"}, "output.format"),
        ({"output__path": "x.csv.gz", "output__compression": "zstd"}, "output.compression"),
        ({"output__path": "-", "output__format": "parquet"}, "output.format"),
        (
            {"output__path": "x.csv", "output__max_records_per_file": 10},
            "output.max_records_per_file",
        ),
        ({"output__path": "x.csv", "output__extra_columns": "drop"}, "output.extra_columns"),
    ],
)
async def test_output_settings_that_cannot_work_fail_before_any_request(
    demo: DemoServer, tmp_path: Path, changes: dict[str, Any], key: str
) -> None:
    config = write_config(tmp_path, demo.url, **changes)
    result = await run_cli(str(config), "--progress", "none", cwd=tmp_path)
    assert result.code == 2, result.stderr
    assert_one_clear_line(result, key)
    assert demo.stats.data_requests == 0


async def test_an_unwritable_folder_fails_before_any_request(
    demo: DemoServer, tmp_path: Path
) -> None:
    # /sys refuses a new folder even to root, unlike a folder's mode bits.
    config = write_config(tmp_path, demo.url, output__path="/sys/harvester-test/items.csv.gz")
    result = await run_cli(str(config), "--progress", "none")
    assert result.code == 1, result.stderr
    assert_one_clear_line(result, "/sys/harvester-test/items.csv.gz", "cannot")
    assert demo.stats.data_requests == 0
