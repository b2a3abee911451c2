"""Stream outputs (a terminal, a pipe, /dev/stdout): written to, never replaced.

A stream cannot be renamed onto, and has nothing beside it to resume from: committed pages are
written into it as they come (`| jq`, `| duckdb` read them at once), and each run starts over.
A run that fails leaves the reader part of the dataset and exits non-zero. Writes never block
the process, so a signal can always stop it, and a slow reader holds back the reorder window.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from harvester.errors import ConfigError, Interrupted, OutputError
from harvester.stop import Stop

log = logging.getLogger("harvester")

STDOUT = "-"
_CHUNK = 1 << 20  # bytes handed to one write
_ALIASES = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/")


def is_stream(path: str) -> bool:
    """Whether `path` is written as a stream: `-` (stdout), a device, a pipe, or a
    name for an open descriptor (/dev/stdout, /dev/fd/N), whatever file that descriptor is."""
    if path == STDOUT or path.startswith(_ALIASES):
        return True
    try:
        mode = os.stat(path).st_mode  # through a symlink: a link to a device is a stream
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)


def refuse_socket(path: str) -> None:
    """ConfigError if `path` is a UNIX socket: open() on one fails (ENXIO, which for a named
    pipe means "no reader yet"), so it would be waited for forever. /dev/fd/N naming a
    connected socket is a descriptor, not a socket file, and is written like any stream."""
    if path == STDOUT or path.startswith(_ALIASES):
        return
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            raise ConfigError(
                f"{path} is a UNIX socket, which harvester cannot open to write: give a file, "
                "a named pipe, a device or - (stdout), e.g. pipe into socat",
                key="output.path",
            )


def is_stdout(path: str) -> bool:
    """Whether `path` is this process's standard output (`-`, /dev/stdout, or what it names)."""
    if path == STDOUT:
        return True
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):  # no such file, or stdout replaced in-process
        return False


class Stream:
    """A stream output, written as pages are committed (never blocking: see `send`).

    Its private temporary folder holds what a run keeps beside the stream: the spools of
    partition windows after the first, which join the stream at the end.
    """

    def __init__(self, target: str, stop: Stop | None = None) -> None:
        self.target = target
        self.stop = stop or Stop()
        self._folder = Path(tempfile.mkdtemp(prefix="harvester-"))  # 0700
        self.staging = self._folder / "output"
        self.written = 0  # bytes the stream has taken
        self._fd: int | None = None
        self._sending = asyncio.Lock()  # one writer at a time: bytes leave in order

    async def open(self) -> None:
        """Open the stream (a named pipe: once a reader comes); Interrupted if stopped first."""
        if self._fd is None:
            self._fd = await self._open(self.stop)

    async def send(self, buffer: bytearray) -> None:
        """Write out and remove what `buffer` holds, including what is added meanwhile.

        OutputError if the stream fails (a reader gone: EPIPE), Interrupted if a stop is
        requested while the stream takes no more (a reader that stopped reading).
        """
        async with self._sending:
            await self.open()  # even with nothing to send: a pipe's reader then sees its end
            assert self._fd is not None
            try:
                while buffer:
                    # A copy: the buffer grows while this write waits (no view may pin it).
                    chunk = memoryview(bytes(buffer[:_CHUNK]))
                    written = await self._write(self._fd, chunk, self.stop, self.written)
                    del buffer[:written]
                    self.written += written
            except OSError as exc:
                received = "received part of the output" if self.written else "received nothing"
                if exc.errno == errno.EPIPE:  # `| head`: the reader has what it wanted
                    raise OutputError(
                        f"the reader closed the stream (as `| head` does) once it {received}: "
                        "the run stops, its output incomplete",
                        path=self.target,
                    ) from None
                raise OutputError(
                    f"cannot write the stream: {exc.strerror}; it {received}", path=self.target
                ) from None

    async def _write(self, fd: int, data: memoryview, stop: Stop, copied: int) -> int:
        """os.write on the non-blocking `fd`; while the stream is full, wait on the event loop
        (never in a blocking write, which no signal ends) and check for a stop request."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return os.write(fd, data)
            except BlockingIOError:
                pass
            if stop.requested:
                received = "it received part of the output" if copied else "nothing was written"
                raise Interrupted(
                    f"stopped by {stop.reason} while {self.target} took no more: {received}",
                    signal=stop.reason or "a stop request",
                )
            writable = loop.create_future()
            loop.add_writer(fd, writable.set_result, None)
            try:
                # A bounded wait: a stop request made meanwhile is seen within 0.1 s.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(writable, 0.1)
            finally:
                loop.remove_writer(fd)

    async def _open(self, stop: Stop) -> int:
        if self.target == STDOUT:
            sys.stdout.flush()
            fd = os.dup(sys.stdout.fileno())
            os.set_blocking(fd, False)  # restored by close()
            return fd
        # Never O_CREAT: a device or pipe that went away is not replaced by a file. O_APPEND:
        # /dev/stdout redirected to a file is written after what is there, never over it.
        # O_NONBLOCK: a named pipe nobody reads yet (ENXIO) is waited for here, and a full one
        # in _write, where a signal can still stop the run, not in a blocking call no signal
        # ends.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK
        waiting = False
        while True:
            try:
                return os.open(self.target, flags)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise OutputError(
                        f"cannot open the stream: {exc.strerror}", path=self.target
                    ) from None
            if stop.requested:
                raise Interrupted(
                    f"stopped by {stop.reason} while waiting for a reader of {self.target}: "
                    "nothing was written to it",
                    signal=stop.reason or "a stop request",
                )
            if not waiting:
                log.info("waiting for a reader of the named pipe %s", self.target)
                waiting = True
            await asyncio.sleep(0.05)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # stdout's description is shared
                os.set_blocking(self._fd, True)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        shutil.rmtree(self._folder, ignore_errors=True)
