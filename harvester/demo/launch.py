"""Run a command while the demo API runs in a process of its own, then stop the server.

    python -m harvester.demo.launch [demo options] -- COMMAND ...

`make run` uses it, and the benchmarks use `demo_process` so that the server never shares the
harvester's CPU core or event loop.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence

_READY = "demo API listening on "


@contextlib.contextmanager
def demo_process(options: Sequence[str], *, timeout: float = 30.0) -> Iterator[str]:
    """Start `python -m harvester.demo OPTIONS`; yield its base URL; stop it on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "harvester.demo", *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(_READY):
            raise RuntimeError(f"the demo API did not start (exit code {process.poll()})")
        yield line[len(_READY) :].strip()
    finally:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        print(
            "usage: python -m harvester.demo.launch [demo options] -- COMMAND ...", file=sys.stderr
        )
        return 2
    split = args.index("--")
    demo_options, command = args[:split], args[split + 1 :]
    with demo_process(demo_options) as url:
        print(f"demo API running at {url}", file=sys.stderr, flush=True)
        return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
