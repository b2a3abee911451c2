"""python -m harvester.demo.launch, as `make run` and `make example` use it: a free port when
the one asked for is taken (the configs follow it through HARVESTER_DEMO_URL), and no traceback
when something fails or Ctrl-C stops the run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harvester.demo.launch import port_free

ROOT = Path(__file__).parent.parent
TIMEOUT = 120


def launch(*demo: str, command: list[str]) -> list[str]:
    return [sys.executable, "-m", "harvester.demo.launch", *demo, "--", *command]


def harvest(config: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "harvester", config, "--output", str(out), "--progress", "none"]


@pytest.mark.parametrize("config", ["config.yaml", "examples/cursor-partitioned.yaml"])
def test_a_busy_port_gives_way_to_a_free_one_that_the_config_follows(
    tmp_path: Path, config: str
) -> None:
    out = tmp_path / "out.jsonl"
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        command = launch("--port", str(port), "--records", "1000", command=harvest(config, out))
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert f"port {port} is taken: the demo API listens on a free one" in result.stderr
    assert "demo API running at http://127.0.0.1:" in result.stderr
    assert f"127.0.0.1:{port}/" not in result.stderr
    assert out.read_bytes().count(b"\n") == 1000
    assert "records      1,000" in result.stdout


def test_a_demo_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    command = launch("--records", "-5", command=harvest("config.yaml", tmp_path / "out.jsonl"))
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "the demo API did not start" in result.stderr.splitlines()[-1]


def test_ctrl_c_stops_the_harvest_gracefully_and_the_launcher_quietly(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    # Each page 0.5 s late: the run lasts far longer than it takes to interrupt it.
    debug = [*harvest("config.yaml", out), "--log-level", "DEBUG"]  # says when a page came
    command = launch("--port", "0", "--latency", "0.5", command=debug)
    with subprocess.Popen(
        command, cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:  # until the first page came
            seen.append(line)
            if " answered 200" in line:
                break
        assert seen and " answered 200" in seen[-1], seen
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: the terminal's whole group
        rest = process.stderr.read()
        code = process.wait(timeout=TIMEOUT)
    stderr = "".join(seen) + rest
    assert code == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "stopped by SIGINT" in stderr
