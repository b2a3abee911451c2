"""CSV (RFC 4180): one row a record, nested objects flattened to dotted columns.

- Columns: `output.columns`, or else the union of the first page's fields in first-seen order.
  A later record with a field outside them fails the run (never a silently dropped value), unless
  `output.extra_columns: json` puts such fields into one last column `_extra`, as a JSON object
  of dotted field -> value.
- Cells: text as is; numbers exactly as the server sent them (the JSON text, never a float
  reformatted); true/false; arrays (and an empty object) as JSON text; null as an empty cell. An
  empty string is written quoted (`""`), so null and "" stay apart, as PostgreSQL's COPY tells
  them; a field missing from a record is null.
- Quoting: a cell is quoted when it holds a comma, a double quote, CR or LF (or is the empty
  string), quotes doubled; rows end in CRLF; UTF-8 without a byte order mark.
- A cell has no type: "12" and 12, "true" and true are the same cell; only null and "" stay
  apart. A value that a spreadsheet would take for a formula (=, +, -, @) is left as sent.

The header is part of the checkpoint state, so a resumed run writes the same header it began with.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from harvester.checkpoint import checkpoint_path
from harvester.errors import RecordsError, ResumeError
from harvester.page import Page
from harvester.read import ExactNumber
from harvester.writers.base import records_of
from harvester.writers.encoded import EncodedWriter

EXTRA = "_extra"
_NEEDS_QUOTES = re.compile(r'[",\r\n]')


class CsvWriter(EncodedWriter):
    """Records as CSV rows; see the module's docstring for the rules."""

    _columns: list[str] | None = None  # the header, once decided
    _index: dict[str, int]

    def resume(self, state: dict[str, Any] | None) -> None:
        saved = None if state is None else state.get("columns")
        if saved is None:
            return  # nothing written yet: the header is decided as for a new output
        configured = self.format.columns
        if (configured is not None and list(saved) != self._header(list(configured))) or (
            state is not None and state.get("extra_columns") != self.format.extra_columns
        ):
            raise ResumeError(
                "output.columns or output.extra_columns changed since the partial output's "
                f"header ({', '.join(saved)}) was written",
                path=str(checkpoint_path(self.target.output)),
            )
        self._use(list(saved))

    def saved(self) -> dict[str, Any]:
        return {"columns": self._columns, "extra_columns": self.format.extra_columns}

    def _header(self, fields: list[str]) -> list[str]:
        return [*fields, EXTRA] if self.format.extra_columns == "json" else fields

    def _use(self, columns: list[str]) -> None:
        self._columns = columns
        self._index = {name: i for i, name in enumerate(columns)}

    def encode(self, page: Page) -> bytes:
        records = records_of(page)
        head = b""
        if self._columns is None:
            if not records and self.format.columns is None:
                return b""  # the header waits for the first records to tell the columns
            fields = self.format.columns or _fields_of(records, page)
            self._use(self._header(list(fields)))
            head = _row(self._columns or []).encode()
        try:
            rows = [self._row(record, page) for record in records]
            return head + "".join(rows).encode()
        except (UnicodeEncodeError, orjson.JSONEncodeError):  # a lone surrogate ("\ud800")
            raise RecordsError(
                "a string holds a lone UTF-16 surrogate, which CSV (UTF-8 text) cannot hold: "
                "choose output.format: jsonl, which keeps it as an escape",
                page=page.index,
                url=page.url,
            ) from None

    def finish(self) -> None:
        if self._columns is None and self.format.columns is not None:
            self.write(Page(0, b"", 0))  # no records: the configured header alone
        super().finish()

    def _row(self, record: Any, page: Page) -> str:
        flat = flatten(record, page)
        cells: list[str | None] = [None] * len(self._index)
        extra: dict[str, Any] | None = None
        for name, value in flat.items():
            at = self._index.get(name)
            if at is None or name == EXTRA and self.format.extra_columns == "json":
                if self.format.extra_columns != "json":
                    raise RecordsError(
                        f"a record has the field {name!r}, which is not among the CSV columns "
                        "(taken from output.columns, or else from the first page's records): "
                        "add it to output.columns, or set output.extra_columns: json to keep "
                        f"such fields in one {EXTRA} column; then run again with --fresh",
                        page=page.index,
                        url=page.url,
                    )
                extra = {} if extra is None else extra
                extra[name] = value
                continue
            cells[at] = cell(value)
        if extra is not None:
            cells[-1] = _quoted(_json(extra))
        return _row_of(cells)


def flatten(record: Any, page: Page) -> dict[str, Any]:
    """{dotted column: value} of a record; an object with no fields stays a value ({})."""
    if not isinstance(record, dict):
        raise RecordsError(
            f"a record is {type(record).__name__}, not an object: CSV needs fields for its "
            "columns; choose output.format: jsonl",
            page=page.index,
            url=page.url,
        )
    flat: dict[str, Any] = {}
    _flatten_into(flat, "", record, page)
    return flat


def _flatten_into(flat: dict[str, Any], prefix: str, record: dict[str, Any], page: Page) -> None:
    for key, value in record.items():
        name = prefix + key
        if isinstance(value, dict) and value:
            _flatten_into(flat, name + ".", value, page)
        elif name in flat:
            raise RecordsError(
                f"two fields make the same CSV column {name!r} (a key with a dot in it, and a "
                "nested object): choose output.format: jsonl",
                page=page.index,
                url=page.url,
            )
        else:
            flat[name] = value


def _fields_of(records: list[Any], page: Page) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(flatten(record, page)))
    return list(seen)


def cell(value: Any) -> str | None:
    """The text of a value's cell, quoted where needed; None for null (an empty cell)."""
    if value is None:
        return None
    if isinstance(value, str):
        return _quoted(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, ExactNumber):
        return value.text
    if isinstance(value, float):
        return orjson.dumps(value).decode()  # as read.py wrote it into the JSON Lines
    return _quoted(_json(value))  # an array, or an empty object


def _json(value: Any) -> str:
    return orjson.dumps(value, default=_exact).decode()


def _exact(value: Any) -> orjson.Fragment:
    if isinstance(value, ExactNumber):
        return orjson.Fragment(value.text)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _quoted(text: str) -> str:
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + text.replace('"', '""') + '"'


def _row_of(cells: list[str | None]) -> str:
    return ",".join(["" if c is None else c for c in cells]) + "\r\n"


def _row(names: list[str]) -> str:
    return _row_of([_quoted(name) for name in names])


WRITER = CsvWriter
