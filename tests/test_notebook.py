"""The Python API in a real Jupyter kernel (nbclient): examples/notebook.ipynb against the demo
API on loopback, and the kernel's interrupt in the middle of a harvest."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from harvester.demo import DemoServer, DemoSettings, run_demo

from .conftest import SECRET, expected_bytes, write_config

NOTEBOOK = Path(__file__).parent.parent / "examples" / "notebook.ipynb"
KERNEL = "harvester-tests"


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec running this very Python (the venv's), found before any installed one, so
    that a clean clone needs no `ipykernel install`."""
    folder = tmp_path / "jupyter" / "kernels" / KERNEL
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "harvester tests",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # no deprecation warning from jupyter_core
    return KERNEL


@pytest.fixture
async def slow_demo() -> AsyncIterator[DemoServer]:
    settings = DemoSettings(records=5_000, client_secret=SECRET, latency=0.02)
    async with run_demo(settings) as server:
        yield server


def _client(notebook: Any, folder: Path, kernel: str, **options: Any) -> NotebookClient:
    return NotebookClient(
        notebook,
        kernel_name=kernel,
        timeout=120,
        resources={"metadata": {"path": str(folder)}},
        **options,
    )


async def test_the_example_notebook_runs_against_the_demo_api(
    demo: DemoServer, tmp_path: Path, kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_URL", demo.url)
    monkeypatch.setenv("HARVESTER_CLIENT_SECRET", SECRET)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    await _client(notebook, tmp_path, kernel).async_execute()
    assert (tmp_path / "out" / "items.jsonl").read_bytes() == expected_bytes(1_000)
    assert (tmp_path / "out" / "sample.jsonl").read_bytes() == expected_bytes(250)
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    text = json.dumps(outputs)
    # harvest() and harvest_async() each show a progress widget (progress="auto" in a kernel).
    harvests = [c for c in notebook.cells if "harvester.harvest" in "".join(c.get("source", ""))]
    for cell in harvests:
        assert any(
            "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs
        )
    assert "records      1,000" in text
    assert "{'id': 0, 'name': 'item-0000000'" in text  # iter_records
    assert "(1000, True)" in text  # to_pandas: every record, in order
    assert SECRET not in text and "Traceback" not in text


async def _interrupted(
    demo: DemoServer, folder: Path, kernel: str, second: str, third: str
) -> list[Any]:
    """In a fresh kernel: load harvester and a config for `demo`, run `second` and interrupt the
    kernel once the API has had 10 requests, then run `third`; the cells, with their outputs."""
    write_config(folder, demo.url, concurrency__workers=2, concurrency__stop_grace=60)
    cells = [
        new_code_cell("import harvester\nconfig = 'config.yaml'"),
        new_code_cell(second),
        new_code_cell(third),
    ]
    client = _client(new_notebook(cells=cells), folder, kernel, allow_errors=True)
    async with client.async_setup_kernel():
        await client.async_execute_cell(cells[0], 0)
        running = asyncio.ensure_future(client.async_execute_cell(cells[1], 1))
        await demo.wait_for_requests(10)
        assert client.km is not None
        await client.km.interrupt_kernel()
        await running
        await client.async_execute_cell(cells[2], 2)
    return cells


@pytest.mark.parametrize(
    "call",
    ["harvester.harvest(config)", "await harvester.harvest_async(config)"],
    ids=["harvest", "harvest_async"],
)
async def test_interrupting_the_kernel_stops_gracefully_and_says_how_to_resume(
    slow_demo: DemoServer, tmp_path: Path, kernel: str, call: str
) -> None:
    again = "stats = harvester.harvest(config)\nstats.resumed_records"
    cells = await _interrupted(slow_demo, tmp_path, kernel, f"stats = {call}", again)
    [error] = [o for o in cells[1].outputs if o.output_type == "error"]
    assert error.ename == "Interrupted", error
    assert "stopped by KeyboardInterrupt" in error.evalue
    assert "call harvester.harvest() again with the same config to resume" in error.evalue
    # Shown as its one line, not as a traceback through asyncio and harvester.
    assert len(error.traceback) == 1 and "CancelledError" not in json.dumps(cells[1].outputs)
    [resumed] = [o for o in cells[2].outputs if o.output_type == "execute_result"]
    assert int(resumed.data["text/plain"]) > 0
    assert (tmp_path / "out" / "items.jsonl").read_bytes() == expected_bytes(5_000)


@pytest.mark.parametrize(
    "loop",
    [
        "async for record in harvester.stream(config):",
        "for record in harvester.iter_records(config):",
    ],
    ids=["stream", "iter_records"],
)
async def test_interrupting_a_records_loop_ends_it_and_keeps_nothing(
    slow_demo: DemoServer, tmp_path: Path, kernel: str, loop: str
) -> None:
    threads = "any(t.name.startswith('harvester') for t in threading.enumerate())"
    cells = await _interrupted(
        slow_demo,
        tmp_path,
        kernel,
        f"seen = 0\n{loop}\n    seen += 1",
        f"import threading\nprint(seen > 0, {threads})",
    )
    [error] = [o for o in cells[1].outputs if o.output_type == "error"]
    if "stream" in loop:  # the harvest is this loop's: a stop that says what became of it
        assert error.ename == "Interrupted", error
        assert "nothing is kept; call it again to start over" in error.evalue
    else:  # the for loop's own KeyboardInterrupt, once the harvest's thread has ended
        assert error.ename == "KeyboardInterrupt", error
    assert "CancelledError" not in json.dumps(cells[1].outputs)
    # Records were read before the interrupt, and no harvest thread is left behind.
    assert [o.text for o in cells[2].outputs if o.output_type == "stream"] == ["True False\n"]
    assert not (tmp_path / "out").exists()  # nothing written
