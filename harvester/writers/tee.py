"""The configured writer, and a JSON Lines copy of the same records: a parent's, for its children.

A child reads its parent's records back, exactly as the server sent them; CSV, Parquet and
compressed files cannot give them back so. A parent written in such a format therefore also
writes `<output>.records.jsonl` (`records_copy`), committed, checkpointed and resumed with the
output itself; the copy is placed first, so an output in place always has its copy beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harvester.page import Page
from harvester.writers.base import Format, Target, Writer
from harvester.writers.jsonl import JsonlWriter


def records_copy(output: Path) -> Path:
    """Where a parent not written as plain JSON Lines keeps the copy its children read."""
    return output.with_name(output.name + ".records.jsonl")


def needs_copy(fmt: Format) -> bool:
    """Whether children could not read the records back from an output of `fmt`."""
    return fmt.name != "jsonl" or fmt.compression != "none"


class TeeWriter(Writer):
    """Writes each page through `main` and into a JSON Lines copy beside the output."""

    def __init__(self, main: Writer) -> None:
        super().__init__(main.target, main.format)
        self._main = main
        copy = records_copy(main.target.output)
        self._copy = JsonlWriter(
            Target(path=copy.with_name(copy.name + ".part"), output=copy), Format()
        )

    def open(self, state: dict[str, Any] | None) -> None:
        self._main.open(None if state is None else state["main"])
        self._copy.open(None if state is None else state["copy"])

    def write(self, page: Page) -> None:
        self._main.write(page)
        self._copy.write(page)

    def checkpoint(self) -> tuple[dict[str, Any], list[int]]:
        main, main_fds = self._main.checkpoint()
        copy, copy_fds = self._copy.checkpoint()
        return {"main": main, "copy": copy}, main_fds + copy_fds

    def finish(self) -> None:
        self._main.finish()
        self._copy.finish()

    def place(self) -> None:
        self._copy.place()
        self._main.place()

    def close(self) -> None:
        try:
            self._main.close()
        finally:
            self._copy.close()
