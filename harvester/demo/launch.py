"""Run a command while the demo API runs in a process of its own, then stop the server.

    python -m harvester.demo.launch [demo options] -- COMMAND ...

`make run` uses it, and the benchmarks use `demo_process` so that the server never shares the
harvester's CPU core or event loop. When the port asked for (8765 unless --port says) is taken,
the demo API listens on a free one instead; the command finds it in HARVESTER_DEMO_URL, which
the shipped configs read (`${HARVESTER_DEMO_URL:-http://127.0.0.1:8765}`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence

_READY = "demo API listening on "
URL_VARIABLE = "HARVESTER_DEMO_URL"
EXIT_INTERRUPTED = 130


@contextlib.contextmanager
def demo_process(options: Sequence[str], *, timeout: float = 30.0) -> Iterator[str]:
    """Start `python -m harvester.demo OPTIONS`; yield its base URL; stop it on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "harvester.demo", *options],
        stdout=subprocess.PIPE,
        text=True,
        # Out of the terminal's process group: Ctrl-C stops the harvest gracefully, and the
        # server must keep answering its last pages until then; it is stopped here after.
        start_new_session=True,
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


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (as asyncio binds: SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port_options(options: Sequence[str]) -> list[str]:
    """The demo options, the port replaced by 0 (any free one) when the one asked is taken."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--host", default="127.0.0.1")
    own.add_argument("--port", type=int, default=8765)
    known, rest = own.parse_known_args(options)
    port = known.port
    if port and not port_free(known.host, port):
        print(f"port {port} is taken: the demo API listens on a free one", file=sys.stderr)
        port = 0
    return [*rest, "--host", known.host, "--port", str(port)]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        print(
            "usage: python -m harvester.demo.launch [demo options] -- COMMAND ...", file=sys.stderr
        )
        return 2
    split = args.index("--")
    demo_options, command = _free_port_options(args[:split]), args[split + 1 :]
    try:
        with demo_process(demo_options) as url:
            print(f"demo API running at {url}", file=sys.stderr, flush=True)
            return _call(command, {**os.environ, URL_VARIABLE: url})
    except RuntimeError as exc:  # the demo API did not start; it said why on stderr
        print(f"python -m harvester.demo.launch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the command started
        print("python -m harvester.demo.launch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _call(command: Sequence[str], env: dict[str, str]) -> int:
    """Run `command`; Ctrl-C is its to handle (harvester stops gracefully), not ours."""
    # A handler, not SIG_IGN: an ignored signal would stay ignored in the command.
    previous = signal.signal(signal.SIGINT, lambda number, frame: None)
    try:
        return subprocess.call(command, env=env)
    except FileNotFoundError:
        print(f"python -m harvester.demo.launch: no such command: {command[0]}", file=sys.stderr)
        return 127
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
