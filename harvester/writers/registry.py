"""Which writer writes a format: a table of format name -> module, imported when chosen.

A module named here defines `WRITER`, a harvester.writers.base.Writer subclass. A format whose
module is not there (or whose optional package is missing) fails with one line before any request.
"""

from __future__ import annotations

import importlib

from harvester.config import OutputConfig
from harvester.config.output import resolve_format
from harvester.errors import ConfigError
from harvester.writers.base import Format, Target, Writer

MODULES: dict[str, str] = {
    "jsonl": "harvester.writers.jsonl",
    "csv": "harvester.writers.csv",
    "parquet": "harvester.writers.parquet",
}


def register(name: str, module: str) -> None:
    """Make `module` (defining WRITER) the writer of output.format `name`."""
    MODULES[name] = module


def format_of(output: OutputConfig, *, stream: bool = False) -> Format:
    """The resolved Format of `output` (ConfigError as harvester.config.output says)."""
    name, compression = resolve_format(output, stream=stream)
    return Format(
        name=name,
        compression=compression,
        columns=output.columns,
        extra_columns=output.extra_columns,
        max_records_per_file=output.max_records_per_file,
    )


def writer_class(name: str) -> type[Writer]:
    """The Writer subclass for output.format `name`; ConfigError if it is not available."""
    module_name = MODULES.get(name)
    if module_name is None:
        raise ConfigError(f"unknown format {name!r}", key="output.format")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the writer is there, but an import of its own failed: its message speaks
        raise ConfigError(
            f"{name} is not available in this version of harvester: choose jsonl or csv",
            key="output.format",
        ) from None
    writer: type[Writer] = module.WRITER
    return writer


def make_writer(fmt: Format, target: Target) -> Writer:
    """A writer of `fmt` into `target`; ConfigError for what that writer cannot do."""
    cls = writer_class(fmt.name)
    if fmt.compression not in cls.compressions:
        raise ConfigError(
            f"{fmt.name} cannot be written with compression {fmt.compression}",
            key="output.compression",
        )
    if target.stream is not None and not cls.streamable:
        raise ConfigError(
            f"{fmt.name} cannot be written to a stream ({target.stream.target}): give a file path",
            key="output.format",
        )
    if fmt.max_records_per_file is not None and not cls.rotates:
        raise ConfigError(
            f"is not supported for {fmt.name} output (only a format that rotates files takes "
            "it): leave it out",
            key="output.max_records_per_file",
        )
    return cls(target, fmt)
