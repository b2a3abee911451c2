"""`harvester ray` without Ray: a missing extra and bad arguments each answer with one line and
exit 2 (the engine itself: tests/test_ray_engine.py, with Ray)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harvester import cli
from tests.conftest import write_config_file

# `python -m harvester` in a Python where `import ray` fails, as it does without the extra.
WITHOUT_RAY = (
    "import sys; sys.modules['ray'] = None; "
    "from harvester.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_without_the_extra_one_line_says_how_to_install_it(tmp_path: Path) -> None:
    config = write_config_file(tmp_path, "http://127.0.0.1:9")

    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY, "ray", str(config), "--shards", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].endswith("harvester ray needs the ray extra: pip install 'harvester[ray]'")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--shards", "0"], "argument --shards: must be >= 1, got 0"),
        (["--shards", "2", "--concurrent-shards", "3"], "--concurrent-shards must be 1 to"),
        ([], "the following arguments are required: --shards"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], said: str
) -> None:
    config = write_config_file(tmp_path, "http://127.0.0.1:9")

    with pytest.raises(SystemExit) as exited:
        cli.main(["ray", str(config), *arguments])

    assert exited.value.code == 2
    assert said in capsys.readouterr().err
