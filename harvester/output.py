"""Where the output goes on disk: one run per output, no file opened through a symbolic link,
and special files (a terminal, a pipe, /dev/stdout) written as streams, never replaced.

A regular output is written to `<path>.part` and renamed onto `<path>` once complete. Two runs
on one output would write the same `.part` and remove each other's checkpoint, so a run holds
`<path>.lock` (an flock, which the OS releases when a run dies, holding the pid and host to name
the holder by) from before it reads the checkpoint until after its output is in place.

A stream (harvester/stream.py) cannot be renamed onto: it is written once the harvest is whole.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import socket
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

from harvester.errors import OutputError, OutputLocked
from harvester.stream import Stream, is_stream, refuse_socket

# Files harvester creates hold the dataset or say where its pages are: owner-only, like the
# checkpoint. A rerun keeps the mode of the output it replaces (see keep_mode).
PRIVATE = 0o600
WRITE_BUFFER = 1 << 20


def lock_path(output: Path) -> Path:
    return output.with_name(output.name + ".lock")


def _symlink_error(path: Path) -> OutputError:
    return OutputError(
        "is a symbolic link; harvester never writes through one (it may point anywhere): remove it",
        path=str(path),
    )


def refuse_symlinks(paths: Iterable[Path]) -> None:
    """OutputError naming the first of the run's own files that is a symbolic link."""
    for path in paths:
        if path.is_symlink():
            raise _symlink_error(path)


def make_folder(folder: Path) -> None:
    """Make `folder` and its parents; NotADirectoryError naming a file in the way."""
    # mkdir would only say "File exists" or "Not a directory": name the file in the way.
    found = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if found is not None and not found.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{found} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)


def remove_tree(path: Path) -> None:
    """Remove a file, or a folder and all it holds (a Parquet spool); nothing if not there.
    A symbolic link is removed, never followed."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def create_private(path: Path) -> BinaryIO:
    """A new owner-only file at `path`, read-write, replacing an earlier run's leftover;
    never through a symbolic link (OSError, or OutputError for a link)."""
    if path.is_symlink():
        raise _symlink_error(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # so that O_EXCL makes the file: its mode is ours, not a leftover's

    def exclusive(name: str, flags: int) -> int:
        return os.open(name, flags | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE)

    return open(path, "w+b", buffering=WRITE_BUFFER, opener=exclusive)  # noqa: SIM115


def open_existing(path: Path, mode: Literal["r+b", "rb"] = "r+b") -> BinaryIO:
    """An earlier run's file, read-write (or as `mode` says), never through a symbolic link."""

    def not_a_link(name: str, flags: int) -> int:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC)

    try:
        return open(path, mode, buffering=WRITE_BUFFER, opener=not_a_link)  # noqa: SIM115
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _symlink_error(path) from None
        raise


def keep_mode(handle: BinaryIO, output: Path) -> None:
    """Give the finished file the mode of the regular file it replaces: a `chmod` on the
    output survives the next run."""
    with contextlib.suppress(OSError):
        found = os.lstat(output)
        if stat.S_ISREG(found.st_mode):
            os.fchmod(handle.fileno(), stat.S_IMODE(found.st_mode))


@contextlib.contextmanager
def claim(
    target: str, *, own_files: Callable[[Path], list[Path]], warn: Callable[[str], None]
) -> Iterator[tuple[Path, Stream | None]]:
    """(where the run writes, the stream that is then copied into), held for the whole run:
    the output's lock, or a stream's private staging folder. OutputError if a file of the
    run's (`own_files` of the output) or its lock is a symbolic link; ConfigError for a socket."""
    refuse_socket(target)
    if is_stream(target):
        stream = Stream(target)
        try:
            yield stream.staging, stream
        finally:
            stream.close()
        return
    output = Path(target)
    refuse_symlinks([*own_files(output), lock_path(output)])
    with OutputLock(output, warn=warn):
        yield output, None


class OutputLock:
    """`<output>.lock`, held for a run: a second run on the output fails at once, naming the
    holder; a lock left by a run that died is taken over with a warning."""

    def __init__(self, output: Path, *, warn: Callable[[str], None]) -> None:
        self.output = output
        self.path = lock_path(output)
        self._warn = warn
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        for _ in range(10):  # a file removed between our open and our lock: lock the new one
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid, host = _holder(fd)
                os.close(fd)
                raise OutputLocked(path=str(self.output), pid=pid, host=host) from None
            if _is_at(fd, self.path):
                self._take(fd)
                return self
            os.close(fd)
        raise OutputError("cannot lock: the lock file keeps changing", path=str(self.path))

    def _open(self) -> int:
        try:
            make_folder(self.output.parent)
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror}", path=str(self.output)) from None
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(self.path, flags, PRIVATE)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _symlink_error(self.path) from None
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise OutputError(
                    f"cannot write in its folder {self.output.parent}: {exc.strerror}; choose "
                    "an output.path in a folder this user can write, or change its permissions",
                    path=str(self.output),
                ) from None
            raise OutputError(f"cannot lock: {exc.strerror}", path=str(self.path)) from None

    def _take(self, fd: int) -> None:
        pid, host = _holder(fd)
        if pid is not None:  # the flock was free, so that run is gone (killed, or its host down)
            state = "no longer running" if host == socket.gethostname() else "its lock released"
            self._warn(
                f"took over the lock {self.path} left by pid {pid} on {host} ({state}); "
                "its partial output is resumed if its checkpoint allows"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        # Removed while still held, so a run that opened it meanwhile sees it gone and retries.
        with contextlib.suppress(OSError):
            if _is_at(self._fd, self.path):
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _holder(fd: int) -> tuple[int | None, str | None]:
    """(pid, host) written in a lock file; (None, None) if it names nobody."""
    try:
        words = os.pread(fd, 300, 0).decode("utf-8", "replace").split()
        return int(words[0]), words[1]
    except (OSError, ValueError, IndexError):
        return None, None


def _is_at(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except OSError:
        return False
