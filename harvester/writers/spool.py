"""The Parquet writer's spool: committed records kept as numbered segments until the run ends.

pyarrow cannot append to a Parquet file, nor cut one back to a checkpoint. So the records go
into segments, each an Arrow IPC stream (written and read back at memory speed) beside the JSON
Lines it was made from; a segment is closed at each checkpoint, when it is full, and when the
schema widens. The checkpoint counts the closed segments, so a resumed run removes whatever a
killed run wrote after them and carries on with the next number. The JSON Lines are read again
only for a column that turned out to need JSON text after earlier segments had typed it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from harvester.checkpoint import checkpoint_path
from harvester.errors import OutputError, ResumeError
from harvester.output import create_private, make_folder, remove_tree

SEGMENT = re.compile(r"seg-(\d{6})\.(arrow|jsonl)")
# A segment is closed once it holds this many records, so that reading one back at the end
# (memory-mapped) keeps memory flat.
SEGMENT_ROWS = 65_536


class Spool:
    """Numbered segments in a folder: `append` tables, `mark` a resumable boundary."""

    def __init__(self, folder: Path, *, output: Path, segments: int | None) -> None:
        """A new spool (`segments` None: any leftover removed), or an earlier run's with its
        first `segments` segments kept (ResumeError if one is gone)."""
        self.folder = folder
        self._output = output
        self.count = segments or 0  # closed segments
        self._arrow: BinaryIO | None = None
        self._lines: BinaryIO | None = None
        self._ipc: pa.ipc.RecordBatchStreamWriter | None = None
        self._schema: pa.Schema | None = None
        self._rows = 0
        self._unsynced: list[int] = []  # descriptors of segments closed since the last mark
        try:
            if segments is None:
                remove_tree(folder)
                make_folder(folder)
            else:
                self._cut_back(segments)
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror}", path=str(folder)) from None

    def _cut_back(self, segments: int) -> None:
        make_folder(self.folder)
        found = {(int(m[1]), m[2]) for m in map(SEGMENT.fullmatch, _names(self.folder)) if m}
        missing = [
            f"seg-{i:06d}.{kind}"
            for i in range(1, segments + 1)
            for kind in ("arrow", "jsonl")
            if (i, kind) not in found
        ]
        if missing:
            raise ResumeError(
                f"{self.folder} lacks {missing[0]}, which the checkpoint vouches for: "
                "it was changed outside harvester",
                path=str(checkpoint_path(self._output)),
            )
        for name in _names(self.folder):
            match = SEGMENT.fullmatch(name)
            # Written after the checkpoint, or an output a killed finish was building.
            if match is None or int(match[1]) > segments:
                remove_tree(self.folder / name)

    def paths(self, number: int) -> tuple[Path, Path]:
        """Segment `number`'s Arrow stream and JSON Lines."""
        stem = self.folder / f"seg-{number:06d}"
        return stem.with_suffix(".arrow"), stem.with_suffix(".jsonl")

    def append(self, table: pa.Table, lines: bytes) -> None:
        """Add `table` (made from `lines`) to the open segment; a new one for a new schema."""
        new_schema = self._schema is None or not self._schema.equals(
            table.schema, check_metadata=True
        )
        if self._ipc is not None and (new_schema or self._rows >= SEGMENT_ROWS):
            self._close()
        try:
            if self._ipc is None:
                arrow, jsonl = self.paths(self.count + 1)
                self._arrow, self._lines = create_private(arrow), create_private(jsonl)
                self._ipc = pa.ipc.new_stream(self._arrow, table.schema)
                self._schema, self._rows = table.schema, 0
            self._ipc.write_table(table)
            assert self._lines is not None
            self._lines.write(lines)
        except OSError as exc:
            raise OutputError(f"write failed: {exc.strerror}", path=str(self.folder)) from None
        self._rows += table.num_rows

    def _close(self) -> None:
        assert self._ipc is not None and self._arrow is not None and self._lines is not None
        try:
            self._ipc.close()
            for handle in (self._arrow, self._lines):
                handle.flush()
                self._unsynced.append(os.dup(handle.fileno()))
                handle.close()
        except OSError as exc:
            raise OutputError(f"write failed: {exc.strerror}", path=str(self.folder)) from None
        self._ipc = self._arrow = self._lines = None
        self.count += 1

    def mark(self) -> tuple[int, list[int]]:
        """Close the open segment: (segments closed, descriptors to fsync: theirs and the
        folder's)."""
        if self._ipc is not None:
            self._close()
        fds, self._unsynced = self._unsynced, []
        try:
            fds.append(os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise OutputError(f"cannot checkpoint: {exc.strerror}", path=str(self.folder)) from None
        return self.count, fds

    def table(self, number: int) -> pa.Table:
        """Closed segment `number`'s records, read into memory (one segment at a time keeps
        memory flat; a memory map would leave its pages counted in the process's RSS)."""
        with pa.OSFile(str(self.paths(number)[0])) as source:
            return pa.ipc.open_stream(source).read_all()

    def schemas(self) -> Iterator[pa.Schema]:
        """Each closed segment's schema, in order."""
        for number in range(1, self.count + 1):
            with pa.OSFile(str(self.paths(number)[0])) as source:
                yield pa.ipc.open_stream(source).schema

    def close(self) -> None:
        """Release the open segment's files (left as they are: the checkpoint ignores them)."""
        for handle in (self._arrow, self._lines):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        for fd in self._unsynced:
            os.close(fd)
        self._unsynced.clear()
        self._ipc = self._arrow = self._lines = None


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def state_of(count: int, records: int, schema: pa.Schema) -> dict[str, Any]:
    return {"segments": count, "records": records, "schema": schema_text(schema)}


def schema_text(schema: pa.Schema) -> str:
    """The schema as base64 text (Arrow IPC), for the checkpoint."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def schema_from_text(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
