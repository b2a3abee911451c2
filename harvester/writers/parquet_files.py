"""The spool -> Parquet, once the run is complete: the final schema, row groups, part files.

Every segment is cast to the final (widest) schema as it is read, so a widening found late
changes earlier records the same way whether or not the run was killed and resumed in between,
and row groups are cut at fixed record counts, not where the segments happened to end: the
same records always make the same file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harvester.errors import OutputError
from harvester.output import create_private, keep_mode
from harvester.writers.arrow_batches import decode_lines
from harvester.writers.arrow_types import cast_exactly, conform, is_json, json_field, json_text
from harvester.writers.spool import Spool

# Records per row group: large enough for good compression and fast scans (DuckDB writes
# 122,880), small enough that building one keeps memory flat.
ROW_GROUP_ROWS = 65_536


def writable(t: pa.DataType) -> bool:
    """Whether Parquet can hold the type: it has no struct without fields (`{}` only)."""
    if pa.types.is_list(t):
        return writable(t.value_type)
    if pa.types.is_struct(t):
        return t.num_fields > 0 and all(writable(f.type) for f in t)
    return True


def final_schema(spool: Spool, running: pa.Schema) -> pa.Schema:
    """`running`, with a column made JSON text where Parquet has no type for it, or where an
    earlier segment's values do not all cast exactly (an integer beyond 2**53 into a double)."""
    text = {f.name for f in running if not is_json(f) and not writable(f.type)}
    for number, segment in enumerate(spool.schemas(), start=1):
        narrower = [
            f
            for f in running
            if f.name not in text
            and not is_json(f)
            and segment.get_field_index(f.name) >= 0
            and segment.field(f.name).type != f.type
        ]
        if narrower:  # read only the segments a widening came after
            table = spool.table(number)
            text.update(f.name for f in narrower if cast_exactly(table[f.name], f.type) is None)
    return pa.schema([json_field(f.name) if f.name in text else f for f in running])


def conformed(spool: Spool, schema: pa.Schema) -> Iterator[pa.Table]:
    """Each segment's records in `schema`; a column typed there but JSON text in `schema` is
    made again from the segment's JSON Lines, so its text is exactly what the server sent."""
    for number in range(1, spool.count + 1):
        table = spool.table(number)
        typed_here = [
            f.name
            for f in schema
            if is_json(f)
            and f.name in table.schema.names
            and not is_json(table.schema.field(f.name))
        ]
        if typed_here:
            records = decode_lines(spool.paths(number)[1].read_bytes())
            for name in typed_here:
                at = table.schema.get_field_index(name)
                column = json_text(record.get(name) for record in records)
                table = table.set_column(at, json_field(name), column)
        yield conform(table, schema)


def row_groups(
    tables: Iterable[pa.Table], *, group_rows: int, file_rows: int | None = None
) -> Iterator[tuple[int, pa.Table]]:
    """(file number, row group): groups of `group_rows` records, cut also every `file_rows`."""
    held: list[pa.Table] = []
    rows = in_file = file = 0

    def limit() -> int:
        return group_rows if file_rows is None else min(group_rows, file_rows - in_file)

    for table in tables:
        while table.num_rows:
            take = min(limit() - rows, table.num_rows)
            held.append(table.slice(0, take))
            table, rows = table.slice(take), rows + take
            if rows == limit():
                yield file, pa.concat_tables(held)
                held, in_file, rows = [], in_file + rows, 0
                if file_rows is not None and in_file == file_rows:
                    file, in_file = file + 1, 0
    if rows:
        yield file, pa.concat_tables(held)


class ParquetFile:
    """One Parquet file being written at `path` (owner-only, or the mode of the file at
    `replaces`, as for every output), made durable by `close`."""

    def __init__(
        self, path: Path, schema: pa.Schema, codec: str, *, replaces: Path | None = None
    ) -> None:
        self.path = path
        self._replaces = replaces
        self.records = 0
        try:
            self._handle = create_private(path)
            self._writer = pq.ParquetWriter(self._handle, schema, compression=codec)
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror}", path=str(path)) from None

    def write(self, group: pa.Table) -> None:
        try:
            self._writer.write_table(group, row_group_size=group.num_rows)
        except OSError as exc:
            raise OutputError(f"write failed: {exc.strerror}", path=str(self.path)) from None
        self.records += group.num_rows

    def close(self) -> None:
        """Write the footer, flush and fsync."""
        try:
            self._writer.close()
            self._handle.flush()
            if self._replaces is not None:
                keep_mode(self._handle, self._replaces)
            os.fsync(self._handle.fileno())
            self._handle.close()
        except OSError as exc:
            raise OutputError(f"write failed: {exc.strerror}", path=str(self.path)) from None

    def abandon(self) -> None:
        """Close without a footer (an error on the way): the file is removed."""
        for step in (self._writer.close, self._handle.close, self.path.unlink):
            try:
                step()
            except Exception:  # noqa: BLE001, S112 (already failing: the first error is the one)
                continue


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def schema_summary(schema: pa.Schema) -> list[dict[str, Any]]:
    """Each column as the manifest lists it: name, Arrow type, and whether it is JSON text."""
    return [{"name": f.name, "type": str(f.type), "json": is_json(f)} for f in schema]
