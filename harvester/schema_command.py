"""`harvester schema`: print the config's JSON Schema, for editors (config/json_schema.py)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import orjson

# The main command's parser, so that both commands answer alike.
from harvester.cli import EXIT_FAILED, EXIT_OK, Parser
from harvester.config.json_schema import config_schema


def _schema_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="harvester schema",
        description="Print the JSON Schema of harvester's config file (both shapes: one "
        "endpoint, or defaults + resources), for editors: put `# yaml-language-server: "
        "$schema=<file>` on a config's first line.",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of stdout")
    return parser


def schema_text() -> bytes:
    """The schema as the command prints it: indented JSON, one newline at the end."""
    return orjson.dumps(config_schema(), option=orjson.OPT_INDENT_2) + b"\n"


def schema_main(argv: list[str]) -> int:
    """The `harvester schema` command; returns the exit code."""
    args = _schema_parser().parse_args(argv)
    text = schema_text()
    if args.output is None:
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
        return EXIT_OK
    path = Path(args.output)
    try:  # whole or not at all: an editor may be reading the file
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False) as handle:
            handle.write(text)
        os.replace(handle.name, path)
    except OSError as exc:
        print(f"harvester schema: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
