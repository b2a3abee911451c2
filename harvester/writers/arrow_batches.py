"""JSON Lines -> an Arrow table, each value exact, the column types widened as the data needs.

Two paths, one result. Most chunks take pyarrow's JSON reader (C++, about five times faster than
orjson and `Table.from_pylist`) with the columns known so far as an explicit schema, which it
keeps to: a value of another type makes it refuse the chunk, which then takes the Python path.
New columns and members it infers (null, bool, int64, double, string, list, struct, as the
Python path would; a date-like string it would make a timestamp is read again as text). A chunk
with a double column that may hold a number a double does not keep (read.exact_as_int64_or_double:
an integer beyond 2**53 has 16 digits) takes the Python path too, and so does every chunk while
a column holds JSON text. The Python path decodes the records as read.py does (ExactNumber kept)
and builds each column with arrow_types.array_of, which refuses any value it would alter.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json

from harvester.read import NotJSON, decode_json, exact_as_int64_or_double
from harvester.writers.arrow_types import (
    array_of,
    cast_exactly,
    holds_double,
    is_json,
    join,
    json_field,
    json_text,
    plain,
)

# The one column of a chunk whose records are all `{}` (while no record had a member yet): it
# only counts the rows, and is never part of the schema written.
ROWS = "\x00rows"


class NotARow(ValueError):
    """Record `number` of a chunk is not a JSON object: no row of named columns holds it."""

    def __init__(self, number: int, kind: str) -> None:
        super().__init__(f"record {number} is a JSON {kind}, not an object")
        self.number = number
        self.kind = kind


def decode_lines(data: bytes) -> list[Any]:
    """The records of JSON Lines written by harvester, as read.py reads them."""
    if not data:
        return []
    # One JSON array: a line never holds a raw newline (JSON escapes it in strings).
    body = b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]"
    try:
        records = decode_json(body)
    except NotJSON as exc:  # written by harvester itself: a bug, or a spool changed outside
        raise ValueError(f"cannot read back its own records: {exc}") from None
    assert isinstance(records, list)
    return records


def to_table(data: bytes, running: pa.Schema) -> tuple[pa.Table, pa.Schema, list[str]]:
    """The records in `data` (JSON Lines) as a table of the `running` schema widened to hold
    them: (table, widened schema, columns that became JSON text here).

    NotARow if a record is not a JSON object.
    """
    if not any(map(is_json, running)):
        read = _read_fast(data, running)
        if read is not None:
            return read[0], read[1], []
    return _read_slowly(decode_lines(data), running)


def _read_fast(data: bytes, running: pa.Schema) -> tuple[pa.Table, pa.Schema] | None:
    """(table, schema) by pyarrow's reader: the known columns as `running` says, new columns
    and members as it infers them (a date-like string kept as text); None where the Python path
    must decide."""
    # Most chunks bring no new column: read as `running` says (about 15% cheaper than letting
    # pyarrow look for new ones), and only where that fails, let it infer them.
    table = _read_json(data, running, "error") if len(running) else None
    if table is None:
        table = _read_json(data, running, "infer")
    if table is None or not table.num_columns:  # only {} so far: the Python path counts them
        return None
    schema = table.schema
    if schema != running:  # new columns or members: read again with their types given
        # pyarrow infers a date-like string as a timestamp: it is read again as the text sent.
        # And the table of an inferring read can be invalid ([null, false] in pyarrow 26).
        schema = _text_for_time(schema)
        if not all(plain(f.type) for f in schema):
            return None
        table = _read_json(data, schema, "error")
    doubles = any(holds_double(f.type) for f in schema)
    if table is None or (doubles and not exact_as_int64_or_double(data)):
        return None
    # pyarrow 26's reader builds [null, null] as an invalid list<null> (offsets past its values)
    if any(_null_items(f.type) for f in schema):
        return None
    return table, schema


def _read_json(data: bytes, schema: pa.Schema, unexpected: str) -> pa.Table | None:
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected)
    # One block for the whole chunk (a block must hold the longest line), read in this thread:
    # the run's workers have the other cores.
    reading = pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1)
    try:
        return pa_json.read_json(io.BytesIO(data), read_options=reading, parse_options=options)
    except pa.ArrowInvalid:  # another type, a record not an object: the Python path decides
        return None


def _null_items(t: pa.DataType) -> bool:
    if pa.types.is_list(t):
        return pa.types.is_null(t.value_type) or _null_items(t.value_type)
    if pa.types.is_struct(t):
        return any(_null_items(f.type) for f in t)
    return False


def _text_for_time(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, _text_type(f.type)) for f in schema])


def _text_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_temporal(t):
        return pa.string()
    if pa.types.is_list(t):
        return pa.list_(_text_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _text_type(f.type)) for f in t])
    return t


def _read_slowly(records: list[Any], running: pa.Schema) -> tuple[pa.Table, pa.Schema, list[str]]:
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            raise NotARow(number, type(record).__name__)
    fields = {f.name: f for f in running}
    names = dict.fromkeys(fields)
    for record in records:
        names.update(dict.fromkeys(record))
    columns: dict[str, pa.Array] = {}
    became_json = []
    for name in names:
        values = [record.get(name) for record in records]
        known = fields.get(name)
        array = None if known is not None and is_json(known) else _typed(values, known)
        if array is None:
            if known is None or not is_json(known):
                became_json.append(name)
            fields[name] = json_field(name)
            array = json_text(values)
        elif known is None or known.type != array.type:
            fields[name] = pa.field(name, array.type)
        columns[name] = array
    schema = pa.schema(list(fields.values()))
    if not len(schema):  # every record so far is {}: a table without columns has no rows
        counted = pa.schema([pa.field(ROWS, pa.null())])
        return pa.table([pa.nulls(len(records))], schema=counted), schema, []
    table = pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)
    return table, schema, became_json


def _typed(values: list[Any], known: pa.Field | None) -> pa.Array | None:
    """`values` as an array of the known column's type widened for them; None if no type but
    JSON text holds them all exactly."""
    array = array_of(values)
    if array is None or known is None:
        return array
    to = join(known.type, array.type)
    return None if to is None else cast_exactly(array, to)
