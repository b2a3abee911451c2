"""Which Arrow type holds a column of JSON values exactly, and how two such types widen.

The types a column may take, from JSON values:

    null  -> bool | int64 | double | string | list<T> | struct<fields>
    int64 -> double             where every integer is exact as a double (|n| <= 2**53)
    list<A>, list<B>            -> list<A joined with B>
    struct<a...>, struct<b...>  -> the fields of both, in order of first appearance, each joined

Anything else (a string and a number, an integer beyond 64 bits, a number no double holds
exactly; at the end, objects that never had a member) has no Arrow type that keeps every value
exactly: the whole top-level column is then JSON text, each value as harvester writes it in
JSON Lines, marked by the field metadata `harvester: json`. JSON text is the top of the order:
it never narrows again, so the final schema does not depend on where a run was cut into chunks
or segments.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from harvester.read import encode_records

JSON_METADATA = {b"harvester": b"json"}
# Integers beyond this are not all exact as doubles.
EXACT_IN_DOUBLE = 2**53


def is_json(field: pa.Field) -> bool:
    """Whether the column holds JSON text (values no one Arrow type holds exactly)."""
    return field.metadata is not None and field.metadata.get(b"harvester") == b"json"


def json_field(name: str) -> pa.Field:
    return pa.field(name, pa.string(), metadata=JSON_METADATA)


def join(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The narrowest type holding values of both `a` and `b` exactly; None if there is none."""
    if a == b:
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    if {a, b} == {pa.int64(), pa.float64()}:
        return pa.float64()  # exactness is checked on the values (see widen, cast_exactly)
    if pa.types.is_list(a) and pa.types.is_list(b):
        item = join(a.value_type, b.value_type)
        return None if item is None else pa.list_(item)
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        return _join_structs(a, b)
    return None


def _join_structs(a: pa.StructType, b: pa.StructType) -> pa.DataType | None:
    fields: dict[str, pa.DataType] = {f.name: f.type for f in a}
    for f in b:
        joined = join(fields[f.name], f.type) if f.name in fields else f.type
        if joined is None:
            return None
        fields[f.name] = joined
    return pa.struct(list(fields.items()))


def plain(t: pa.DataType) -> bool:
    """Whether `t` is made only of the types above (no decimal, no unsigned integer).

    A struct without fields (values `{}` only) is one too while the run lasts, so that it widens
    like any other; Parquet has no such type, so it is JSON text if it is still one at the end.
    """
    if pa.types.is_list(t):
        return plain(t.value_type)
    if pa.types.is_struct(t):
        return all(plain(f.type) for f in t)
    return t in (pa.null(), pa.bool_(), pa.int64(), pa.float64(), pa.string())


def holds_double(t: pa.DataType) -> bool:
    if pa.types.is_list(t):
        return holds_double(t.value_type)
    if pa.types.is_struct(t):
        return any(holds_double(f.type) for f in t)
    return bool(t == pa.float64())


def widen(running: pa.Schema, batch: pa.Schema) -> tuple[pa.Schema, list[str]]:
    """`running` widened to hold `batch` too: (schema, columns that became JSON text).

    Columns keep the order in which they first appeared; new ones come last, in `batch` order.
    """
    fields = {f.name: f for f in running}
    became_json = []
    for f in batch:
        known = fields.get(f.name)
        if known is None:
            fields[f.name] = f
            continue
        if is_json(known):
            continue
        joined = None if is_json(f) else join(known.type, f.type)
        if joined is None:
            fields[f.name] = json_field(f.name)
            became_json.append(f.name)
        elif joined != known.type:
            fields[f.name] = pa.field(f.name, joined)
    return pa.schema(list(fields.values())), became_json


def cast_exactly(values: pa.Array, to: pa.DataType) -> pa.Array | None:
    """`values` as type `to` (a widening of theirs), or None if a value would change (an
    integer beyond 2**53 into a double)."""
    if values.type == to:
        return values
    try:
        result: pa.Array = pc.cast(values, to, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    try:
        result.validate()
    except pa.ArrowInvalid:
        # Arrow 26 casts a struct holding a list of nulls into a wider struct as an array whose
        # list offsets overrun their values (invalid; writing it fails): built anew from the
        # values, and kept only if every value comes back the same.
        return _rebuilt(values, to)
    return result


def _rebuilt(values: pa.Array | pa.ChunkedArray, to: pa.DataType) -> Any:
    """`values` built anew as type `to` from their Python values, chunk by chunk; None unless
    every value comes back the same."""
    chunked = isinstance(values, pa.ChunkedArray)
    sent = [chunk.to_pylist() for chunk in (values.chunks if chunked else [values])]
    try:
        built = [pa.array(items, type=to) for items in sent]
        for array in built:
            array.validate()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    for array, items in zip(built, sent, strict=True):
        if not all(map(same, array.to_pylist(), items)):
            return None
    return pa.chunked_array(built, type=to) if chunked else built[0]


def array_of(values: list[Any]) -> pa.Array | None:
    """An Arrow array holding each of `values` exactly, of a type above; None if none does."""
    try:
        array = pa.array(values, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
        # Several types, an integer beyond 64 bits, a lone surrogate that is not Unicode.
        return None
    if not plain(array.type):  # decimal128 from an ExactNumber, an object with no fields
        return None
    # pyarrow reads True as 1.0 in a column of floats: compare what comes back, type for type.
    if holds_double(array.type) and not all(map(same, array.to_pylist(), values)):
        return None
    return array


def same(stored: Any, sent: Any) -> bool:
    """Whether `stored` (read back from Arrow) is `sent` exactly, a bool never a number; an
    object's missing members are null in a struct."""
    if sent is None or stored is None:
        return sent is None and stored is None
    if isinstance(sent, bool) or isinstance(stored, bool):
        return type(sent) is type(stored) and bool(sent == stored)
    if isinstance(sent, dict):
        return isinstance(stored, dict) and all(
            same(stored.get(k), sent.get(k)) for k in stored.keys() | sent.keys()
        )
    if isinstance(sent, list):
        return (
            isinstance(stored, list) and len(stored) == len(sent) and all(map(same, stored, sent))
        )
    return type(sent) in (int, float, str) and bool(stored == sent)


def json_text(values: Iterable[Any]) -> pa.Array:
    """Each value as its JSON text (as harvester writes it in JSON Lines); null stays null."""
    values = list(values)
    present = [v for v in values if v is not None]
    lines = iter(encode_records(present).decode().split("\n"))
    return pa.array([None if v is None else next(lines) for v in values], pa.string())


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly the columns and types of `schema` (a widening of its own): columns
    it lacks are null. ValueError for a column that cannot be cast exactly (a bug: the final
    schema is chosen so that every column can)."""
    columns = []
    for f in schema:
        at = table.schema.get_field_index(f.name)
        if at < 0:
            columns.append(pa.chunked_array([pa.nulls(table.num_rows, f.type)], f.type))
            continue
        if is_json(f) and not is_json(table.schema.field(at)):
            raise ValueError(f"column {f.name!r} is typed here, JSON text in the schema")
        cast = cast_exactly(table.column(at), f.type)
        if cast is None:
            raise ValueError(f"column {f.name!r} does not cast exactly to {f.type}")
        columns.append(cast)
    return pa.Table.from_arrays(columns, schema=schema)
