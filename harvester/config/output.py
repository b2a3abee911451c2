"""The output's format and compression: as configured, or told by the path's suffix.

`output.format` and `output.compression` may be left out: `x.csv.gz` says CSV, gzipped. A suffix
that says otherwise than the configured value is a mistake caught at load time (a file called
`x.jsonl` holding CSV would fool every reader after it), naming the key that disagrees.
"""

from __future__ import annotations

from pathlib import PurePath

from harvester.config.schema import OutputConfig
from harvester.errors import ConfigError

FORMAT_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd"}
STREAMABLE = ("jsonl", "csv")  # parquet writes its footer last: no stream can take it


def told_by_path(path: str) -> tuple[str | None, str | None]:
    """(format, compression) the path's suffixes say; None where they say nothing."""
    suffixes = [s.lower() for s in PurePath(path).suffixes]
    compression = COMPRESSION_SUFFIXES.get(suffixes[-1]) if suffixes else None
    if compression is not None:
        suffixes.pop()
    elif suffixes and suffixes[-1] in FORMAT_SUFFIXES:
        compression = "none"  # x.jsonl: not compressed
    fmt = FORMAT_SUFFIXES.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def resolve_format(output: OutputConfig, *, stream: bool = False) -> tuple[str, str]:
    """(format, compression) for `output`; ConfigError naming the key a suffix contradicts.

    A stream (`-`, a device, a pipe) has no suffix to tell by: jsonl, uncompressed, unless
    configured.
    """
    fmt, compression = (None, None) if stream else told_by_path(output.path)
    if output.format is not None and fmt is not None and output.format != fmt:
        raise ConfigError(
            f"is {output.format}, but output.path {output.path!r} ends in a {fmt} suffix: "
            "change one so they agree (or leave output.format out)",
            key="output.format",
        )
    if output.compression is not None and compression not in (None, output.compression):
        said = "no compression" if compression == "none" else compression
        raise ConfigError(
            f"is {output.compression}, but output.path {output.path!r} says {said}: change "
            "one so they agree (or leave output.compression out)",
            key="output.compression",
        )
    resolved = output.format or fmt or "jsonl"
    squeezed = output.compression or compression or "none"
    if resolved == "parquet" and squeezed != "none":
        raise ConfigError(
            "parquet compresses its own column chunks: leave output.compression out (or none)",
            key="output.compression",
        )
    if resolved == "parquet" and stream:
        raise ConfigError(
            "parquet cannot be written to a stream (its footer comes last, and readers seek): "
            "give a file path, or choose jsonl or csv",
            key="output.format",
        )
    if output.max_records_per_file is not None and output.max_records_per_file < 1:
        raise ConfigError("must be >= 1", key="output.max_records_per_file")
    if output.columns is not None:
        _check_columns(output.columns)
    return resolved, squeezed


def _check_columns(columns: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(columns):
        if not name:
            raise ConfigError("must not be empty", key=f"output.columns[{i}]")
        if name in seen:
            raise ConfigError(f"names {name!r} twice", key="output.columns")
        seen.add(name)
