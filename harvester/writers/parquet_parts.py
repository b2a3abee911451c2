"""output.max_records_per_file for Parquet: a folder of part files and a manifest.

The folder is built in the run's working folder (`<output>.part/<output name>/`) and renamed
onto the output path once whole. In it each
part is written under a temporary name, fsynced and renamed, and `manifest.json` (file names,
records per file, sha256, schema) comes last: a folder with a manifest is complete. A run that
dies while writing parts starts the folder over when it finishes again, from the same spool, so
no part is lost or written twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from harvester.checkpoint import fsync_folder
from harvester.errors import OutputError
from harvester.output import create_private, make_folder, remove_tree
from harvester.writers.parquet_files import (
    ROW_GROUP_ROWS,
    ParquetFile,
    row_groups,
    schema_summary,
    sha256_of,
)

MANIFEST = "_manifest.json"  # "_": pyarrow, pandas and Spark skip it when reading the folder


def part_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


def check_output_folder(output: Path) -> None:
    """OutputError unless `output` is free, or a folder an earlier rotated run made."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise OutputError(
            "is a file, but with output.max_records_per_file the output is a folder of part "
            "files: remove it or choose another output.path",
            path=str(output),
        )
    if output.is_dir() and not (output / MANIFEST).is_file():
        raise OutputError(
            f"is a folder without a {MANIFEST}, not one harvester wrote: remove it or choose "
            "another output.path",
            path=str(output),
        )


def write_parts(
    tables: Iterable[pa.Table],
    folder: Path,
    *,
    schema: pa.Schema,
    codec: str,
    per_file: int,
) -> dict[str, Any]:
    """The parts and manifest of `tables` in `folder` (started afresh); returns the manifest."""
    try:
        remove_tree(folder)
        make_folder(folder)
        folder.chmod(0o700)  # as private as the part files in it (and every output file)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror}", path=str(folder)) from None
    files: list[dict[str, Any]] = []
    current: ParquetFile | None = None
    try:
        for number, group in row_groups(tables, group_rows=ROW_GROUP_ROWS, file_rows=per_file):
            if current is not None and number != len(files):
                _complete(current, folder, files)
                current = None
            if current is None:
                current = ParquetFile(folder / f".{part_name(number)}.tmp", schema, codec)
            current.write(group)
        if current is not None:
            _complete(current, folder, files)
            current = None
    finally:
        if current is not None:
            current.abandon()
    manifest = {
        "format": "parquet",
        "records": sum(f["records"] for f in files),
        "max_records_per_file": per_file,
        "files": files,
        "schema": schema_summary(schema),
    }
    _write_atomically(folder / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return manifest


def _complete(part: ParquetFile, folder: Path, files: list[dict[str, Any]]) -> None:
    """Close `part` and rename it to its name: from now on it is there, whole."""
    part.close()
    name = part_name(len(files))
    try:
        os.replace(part.path, folder / name)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror}", path=str(folder / name)) from None
    files.append(
        {
            "name": name,
            "records": part.records,
            "bytes": (folder / name).stat().st_size,
            "sha256": sha256_of(folder / name),
        }
    )


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with create_private(temporary) as handle:
            handle.write(data + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_folder(path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror}", path=str(path)) from None


def place_folder(staging: Path, output: Path) -> None:
    """Rename the complete `staging` folder onto `output`, replacing an earlier run's folder
    (moved aside first: a folder cannot be renamed onto one that is not empty)."""
    aside = output.with_name(output.name + ".old")
    try:
        remove_tree(aside)
        if output.is_dir():
            os.replace(output, aside)
        os.replace(staging, output)
        fsync_folder(output.parent)
        remove_tree(aside)
    except OSError as exc:
        raise OutputError(f"cannot finish: {exc.strerror}", path=str(output)) from None
