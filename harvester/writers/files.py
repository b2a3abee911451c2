"""The files a writer works in: made owner-only, resumed by cutting back to the committed length,
made durable, and renamed onto the output path once complete."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from harvester.checkpoint import checkpoint_path, fsync_folder
from harvester.errors import OutputError, ResumeError
from harvester.output import create_private, keep_mode, make_folder, open_existing


def open_for_writing(
    target: Path, *, output: Path, keep: int | None = None, lines: bool = True
) -> BinaryIO:
    """`target` opened for writing (its folder made); OutputError if that, or `output`, fails.

    With `keep`, an earlier run's file is resumed: cut back to its first `keep` bytes, the
    length the checkpoint vouches for, and written on from there. `lines`: the file holds text
    lines, so the byte before `keep` must end one (a compressed file's boundary cannot be
    told by a byte).
    """

    # An output path that is a folder is found now, not after the whole download.
    if output.is_dir():
        raise OutputError(
            "is a folder, not a file: name a file in it (e.g. records.jsonl)", path=str(output)
        )

    def open_target() -> BinaryIO:
        make_folder(target.parent)
        if keep is None:
            return create_private(target)
        if not target.exists():
            raise ResumeError(f"{target} is gone", path=str(checkpoint_path(output)))
        handle = open_existing(target)
        try:
            cut_back(handle, keep, target, checkpoint_path(output), lines=lines)
        except BaseException:
            handle.close()
            raise
        return handle

    try:
        # In the loop's own thread: quick, and a cancelled open cannot leak its file.
        return open_target()
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror}", path=str(target)) from None


def cut_back(handle: BinaryIO, keep: int, target: Path, checkpoint: Path, *, lines: bool) -> None:
    """Cut `handle` to its first `keep` bytes; ResumeError if it holds fewer, or (`lines`) if
    byte `keep` does not end a line."""
    size = os.fstat(handle.fileno()).st_size
    if size < keep:
        raise ResumeError(
            f"{target} holds {size} bytes, fewer than the {keep} it vouches for: "
            "it was changed outside harvester",
            path=str(checkpoint),
        )
    if keep and lines:
        handle.seek(keep - 1)
        if handle.read(1) != b"\n":
            raise ResumeError(
                f"{target} does not end a record at byte {keep}: it was changed outside harvester",
                path=str(checkpoint),
            )
    handle.truncate(keep)
    handle.seek(keep)


def write(handle: BinaryIO, data: bytes) -> None:
    """handle.write, an OSError (ENOSPC, most often) said as an OutputError naming the file."""
    try:
        handle.write(data)
    except OSError as exc:
        raise OutputError(f"write failed: {exc.strerror}", path=str(handle.name)) from None


def make_durable(handle: BinaryIO, part: Path, output: Path) -> None:
    """Flush, fsync and close `handle` (the file at `part`), with the mode of the file at
    `output` it is to replace."""
    try:
        handle.flush()
        keep_mode(handle, output)
        os.fsync(handle.fileno())
        handle.close()
    except OSError as exc:  # the data did not all reach the disk: ENOSPC, most often
        raise OutputError(f"write failed: {exc.strerror}", path=str(part)) from None


def replace(part: Path, path: Path) -> None:
    """Rename the complete `part` onto `path`: from now on the output is complete."""
    try:
        os.replace(part, path)
        fsync_folder(path.parent)
    except OSError as exc:
        raise OutputError(f"cannot finish: {exc.strerror}", path=str(path)) from None


def commit(handle: BinaryIO, part: Path, path: Path) -> None:
    """Flush, fsync and rename `part` onto `path`: from now on the output is complete."""
    make_durable(handle, part, path)
    replace(part, path)
