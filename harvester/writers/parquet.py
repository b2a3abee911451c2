"""output.format: parquet, with pyarrow (the optional extra `pip install 'harvester[parquet]'`).

Pages are converted to Arrow in chunks of about 2 MiB as they are committed (arrow_batches), the
schema widening as later records need (arrow_types), and kept in the spool's segments until the
run is complete; `finish` then writes the Parquet file (or, with output.max_records_per_file, a
folder of part files and a manifest) in row groups, every segment cast to the final schema. The
output path only ever holds a complete file: the spool is the run's working folder
`<output>.part/`, the output is built in it under its own name and renamed onto the output path.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from harvester.errors import ConfigError, OutputError, RecordsError

try:
    import pyarrow as pa
except ModuleNotFoundError:  # the extra is not installed: said before any request
    raise ConfigError(
        "parquet needs pyarrow: pip install 'harvester[parquet]' (or choose jsonl or csv)",
        key="output.format",
    ) from None

from harvester.output import remove_tree
from harvester.page import Page
from harvester.writers.arrow_batches import NotARow, to_table
from harvester.writers.arrow_types import is_json
from harvester.writers.base import Format, Target, Writer
from harvester.writers.files import replace
from harvester.writers.parquet_files import (
    ROW_GROUP_ROWS,
    ParquetFile,
    conformed,
    final_schema,
    row_groups,
)
from harvester.writers.parquet_parts import check_output_folder, place_folder, write_parts
from harvester.writers.spool import Spool, schema_from_text, state_of

log = logging.getLogger("harvester")

# Pages are converted in chunks of about this much JSON: one call into pyarrow's reader each,
# which costs little beside the parsing, and little memory.
CHUNK_BYTES = 2 << 20
# Column chunks are compressed with zstd: about half the size of snappy (pyarrow's default)
# for a little more CPU; pyarrow, DuckDB, polars, Spark and pandas all read it.
CODEC = "zstd"


class ParquetWriter(Writer):
    """Committed pages -> Arrow segments in the spool -> one Parquet file (or parts) at finish."""

    streamable = False
    rotates = True

    def __init__(self, target: Target, fmt: Format) -> None:
        super().__init__(target, fmt)
        self._per_file = fmt.max_records_per_file
        self._schema = pa.schema([])
        self._records = 0  # in closed or open segments, not the pending chunk
        self._pending: list[Page] = []
        self._pending_bytes = 0
        self._spool: Spool | None = None

    def open(self, state: dict[str, Any] | None) -> None:
        output = self.target.output
        if self._per_file is not None:
            check_output_folder(output)
        elif output.is_dir():
            raise OutputError("is a folder, not a file", path=str(output))
        # The spool is the run's working folder, `<output>.part/`: what the runner looks for
        # to resume, and removes for --fresh.
        folder = self.target.path
        with contextlib.suppress(OSError):
            remove_tree(self._trash)
        if state is None:
            self._spool = Spool(folder, output=output, segments=None)
            return
        self._spool = Spool(folder, output=output, segments=int(state["segments"]))
        self._schema = schema_from_text(state["schema"])
        self._records = int(state["records"])

    def write(self, page: Page) -> None:
        if not page.count:
            return
        self._pending.append(page)
        self._pending_bytes += len(page.data)
        if self._pending_bytes >= CHUNK_BYTES:
            self._convert()

    def _convert(self) -> None:
        if not self._pending:
            return
        assert self._spool is not None
        pages, self._pending, self._pending_bytes = self._pending, [], 0
        data = b"".join([page.data for page in pages])
        try:
            table, self._schema, became_json = to_table(data, self._schema)
        except NotARow as exc:
            raise _not_a_row(exc, pages) from None
        for name in became_json:
            log.warning(
                "output: column %r holds values no one Parquet type keeps exactly (several "
                "types, or numbers beyond 64 bits or a double's precision): written as JSON text",
                name,
            )
        self._spool.append(table, data)
        self._records += table.num_rows

    def checkpoint(self) -> tuple[dict[str, Any], list[int]]:
        assert self._spool is not None
        self._convert()
        count, fds = self._spool.mark()
        return state_of(count, self._records, self._schema), fds

    def finish(self) -> None:
        assert self._spool is not None
        self._convert()
        _, fds = self._spool.mark()
        for fd in fds:  # the Parquet file is what must be durable now, not the spool
            os.close(fd)
        schema = final_schema(self._spool, self._schema)
        if not len(schema) and self._records:
            raise OutputError(
                f"all {self._records} records are empty objects ({{}}): a Parquet file cannot "
                "hold rows without columns; choose output.format: jsonl",
                path=str(self.target.output),
            )
        text = [f.name for f in schema if is_json(f)]
        if text:
            log.info("output: columns written as JSON text: %s", ", ".join(text))
        tables = conformed(self._spool, schema)
        if self._per_file is not None:
            write_parts(tables, self._finished, schema=schema, codec=CODEC, per_file=self._per_file)
            return
        _write_file(self._finished, tables, schema, self.target.output)

    @property
    def _finished(self) -> Path:
        """Where the complete output is built: in the working folder, under the output's name."""
        return self.target.path / self.target.output.name

    def place(self) -> None:
        if self._per_file is not None:
            place_folder(self._finished, self.target.output)
        else:
            replace(self._finished, self.target.output)
        # The working folder goes in one rename, then is removed: a kill while removing it must
        # not leave a half-removed spool for the next run to resume from. (A kill before the
        # rename leaves the whole spool and the checkpoint: the next run writes the same output
        # again from it.)
        with contextlib.suppress(OSError):
            remove_tree(self._trash)
            os.replace(self.target.path, self._trash)
            remove_tree(self._trash)

    @property
    def _trash(self) -> Path:
        """Where the working folder is moved to be removed (a leftover goes at the next open)."""
        return self.target.path.with_name(self.target.path.name + ".removing")

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


def _write_file(path: Path, tables: Any, schema: pa.Schema, output: Path) -> None:
    file = ParquetFile(path, schema, CODEC, replaces=output)
    try:
        for _, group in row_groups(tables, group_rows=ROW_GROUP_ROWS):
            file.write(group)
    except BaseException:
        file.abandon()
        raise
    file.close()


def _not_a_row(exc: NotARow, pages: list[Page]) -> RecordsError:
    """RecordsError naming the page that holds the record `exc` names."""
    number = exc.number
    for page in pages:
        if number < page.count:
            break
        number -= page.count
    return RecordsError(
        f"record {number} is a JSON {exc.kind}, not an object: Parquet holds records as rows "
        "of named columns; choose output.format: jsonl",
        page=page.index,
        url=page.url,
    )


WRITER = ParquetWriter
