"""The writers on their own: CSV cells and quoting, compression boundaries, resume from a state."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harvester.config import OutputConfig
from harvester.config.output import resolve_format, told_by_path
from harvester.errors import ConfigError, RecordsError, ResumeError
from harvester.page import Page
from harvester.read import decode_json, encode_records
from harvester.writers import Format, Target, make_writer
from harvester.writers.compress import decompress

FORMATS = [
    Format(name=name, compression=compression)
    for name in ("jsonl", "csv")
    for compression in ("none", "gzip", "zstd")
]


def page_of(index: int, records: list[Any]) -> Page:
    """A page of `records` as harvester reads them from JSON (every number exact)."""
    values = decode_json(json.dumps(records).encode())
    return Page(index, encode_records(values), len(values), url=f"http://api.test/{index}")


def output_of(fmt: Format, folder: Path, pages: list[Page], state_after: int | None = None) -> Any:
    """Write `pages` into folder/out; the content (decompressed), or with `state_after` the
    checkpoint state taken after that many pages and the writer left unfinished (a kill)."""
    out = folder / "out"
    writer = make_writer(fmt, Target(path=folder / "out.part", output=out))
    writer.open(None)
    state = None
    try:
        for i, page in enumerate(pages):
            writer.write(page)
            if i + 1 == state_after:
                state, fds = writer.checkpoint()
                for fd in fds:
                    os.close(fd)
        if state_after is not None:
            return state
        writer.finish()
        writer.place()
    finally:
        writer.close()
    return decompress(out.read_bytes(), fmt.compression)


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


# --- CSV cells -----------------------------------------------------------------------------------

KEYS = st.text(st.characters(blacklist_characters=".", blacklist_categories=("Cs",)), min_size=1)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)))
    | st.sampled_from(["", ",", '"', "\r\n", "a,b", 'say "hi"', "line\nbreak", " padded "])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
RECORDS = st.lists(st.dictionaries(KEYS, VALUES, max_size=5), min_size=1, max_size=6)


def cell_text(value: Any) -> str:
    """What a CSV reader must find in the cell of `value`."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return encode_records([value]).decode().rstrip("\n")  # numbers, true/false, arrays: JSON


def flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, prefix + key + "."))
        else:
            out[prefix + key] = value
    return out


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=RECORDS)
def test_csv_cells_read_back_through_python_s_csv_reader(
    tmp_path: Path, records: list[Any]
) -> None:
    # Values as read.py reads them from a server's answer: big ints, long decimals exact.
    records = decode_json(json.dumps(records).encode())
    flats = [flat(r) for r in records]
    columns = list(dict.fromkeys(k for f in flats for k in f))
    data = output_of(Format(name="csv"), tmp_path, [Page(0, encode_records(records), len(records))])
    rows = csv_rows(data)
    assert rows[0] == columns
    assert [row + [""] * (len(columns) - len(row)) for row in rows[1:]] == [
        [cell_text(f.get(c)) for c in columns] for f in flats
    ]


def test_csv_tells_null_from_the_empty_string_and_keeps_numbers_as_sent(tmp_path: Path) -> None:
    body = b'[{"a": null, "b": "", "n": 12345678901234567890123, "x": 1.10, "e": 1E400}]'
    records = decode_json(body)
    page = Page(0, encode_records(records), 1)
    data = output_of(Format(name="csv"), tmp_path, [page])
    assert data == b'a,b,n,x,e\r\n,"",12345678901234567890123,1.1,1E400\r\n'


def test_csv_flattens_objects_and_writes_arrays_as_json(tmp_path: Path) -> None:
    records = [{"id": 1, "a": {"b": {"c": "x,y"}, "d": []}, "t": ["p", {"q": 1}], "o": {}}]
    data = output_of(Format(name="csv"), tmp_path, [page_of(0, records)])
    assert csv_rows(data) == [
        ["id", "a.b.c", "a.d", "t", "o"],
        ["1", "x,y", "[]", '["p",{"q":1}]', "{}"],
    ]


def test_a_field_outside_the_header_fails_the_run_naming_it(tmp_path: Path) -> None:
    pages = [page_of(0, [{"id": 1}]), page_of(1, [{"id": 2, "new": {"x": 1}}])]
    with pytest.raises(RecordsError) as caught:
        output_of(Format(name="csv"), tmp_path, pages)
    assert caught.value.page == 1
    assert "'new.x'" in str(caught.value) and "output.extra_columns: json" in str(caught.value)


def test_extra_columns_json_keeps_the_extras_in_one_column(tmp_path: Path) -> None:
    pages = [page_of(0, [{"id": 1}]), page_of(1, [{"id": 2, "new": {"x": 1}, "s": "t"}])]
    fmt = Format(name="csv", extra_columns="json", columns=("id", "missing"))
    data = output_of(fmt, tmp_path, pages)
    assert csv_rows(data) == [
        ["id", "missing", "_extra"],
        ["1", "", ""],
        ["2", "", '{"new.x":1,"s":"t"}'],
    ]


def test_configured_columns_with_no_records_write_the_header(tmp_path: Path) -> None:
    fmt = Format(name="csv", columns=("id", "name"))
    assert output_of(fmt, tmp_path, [page_of(0, [])]) == b"id,name\r\n"


# --- resume boundaries ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f.name}-{f.compression}")
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=8), data=st.data())
def test_a_resume_from_any_checkpoint_writes_what_an_uninterrupted_run_writes(
    tmp_path: Path, fmt: Format, sizes: list[int], data: st.DataObject
) -> None:
    first = 0
    pages = []
    for i, size in enumerate(sizes):
        pages.append(page_of(i, [{"id": first + k, "v": f"r{first + k}"} for k in range(size)]))
        first += size
    whole = tmp_path / "whole"
    whole.mkdir(exist_ok=True)
    expected = output_of(fmt, whole, pages)
    at = data.draw(st.integers(1, len(pages)), label="checkpoint after")
    junk = data.draw(st.binary(max_size=40), label="bytes past the checkpoint")
    folder = tmp_path / "cut"
    folder.mkdir(exist_ok=True)
    state = output_of(fmt, folder, pages, state_after=at)
    with (folder / "out.part").open("ab") as handle:  # what a kill left past the checkpoint
        handle.write(junk if fmt.compression != "none" else b'{"torn')
    writer = make_writer(fmt, Target(path=folder / "out.part", output=folder / "out"))
    writer.open(state)
    for page in pages[at:]:
        writer.write(page)
    writer.finish()
    writer.place()
    writer.close()
    assert decompress((folder / "out").read_bytes(), fmt.compression) == expected


def test_a_csv_resume_under_other_columns_is_refused(tmp_path: Path) -> None:
    state = output_of(Format(name="csv"), tmp_path, [page_of(0, [{"id": 1}])], state_after=1)
    writer = make_writer(
        Format(name="csv", columns=("id", "x")),
        Target(path=tmp_path / "out.part", output=tmp_path / "out"),
    )
    with pytest.raises(ResumeError, match="output.columns"):
        writer.open(state)
    writer.close()


# --- choosing the format -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "told"),
    [
        ("x.jsonl", ("jsonl", "none")),
        ("x.jsonl.gz", ("jsonl", "gzip")),
        ("x.jsonl.zst", ("jsonl", "zstd")),
        ("x.csv", ("csv", "none")),
        ("x.CSV.GZ", ("csv", "gzip")),
        ("x.csv.zst", ("csv", "zstd")),
        ("x.parquet", ("parquet", "none")),
        ("x.gz", (None, "gzip")),
        ("data", (None, None)),
        ("v1.2/data.json", (None, None)),
    ],
)
def test_the_path_tells_format_and_compression(path: str, told: tuple[Any, Any]) -> None:
    assert told_by_path(path) == told


@pytest.mark.parametrize(
    ("path", "configured", "resolved"),
    [
        ("x.csv.gz", {}, ("csv", "gzip")),
        ("data", {}, ("jsonl", "none")),
        ("data", {"format": "csv", "compression": "zstd"}, ("csv", "zstd")),
        ("x.gz", {"format": "csv"}, ("csv", "gzip")),
        ("x.csv", {"format": "csv", "compression": "none"}, ("csv", "none")),
    ],
)
def test_configured_values_and_the_path_combine(
    path: str, configured: dict[str, Any], resolved: tuple[str, str]
) -> None:
    assert resolve_format(OutputConfig(path=path, **configured)) == resolved


@pytest.mark.parametrize(
    ("path", "configured", "key"),
    [
        ("x.jsonl", {"format": "csv"}, "output.format"),
        ("x.csv.gz", {"compression": "none"}, "output.compression"),
        ("x.csv", {"compression": "gzip"}, "output.compression"),
        ("x.parquet", {"compression": "gzip"}, "output.compression"),
        ("x.csv", {"max_records_per_file": 0}, "output.max_records_per_file"),
        ("x.csv", {"columns": ("a", "a")}, "output.columns"),
    ],
)
def test_a_suffix_that_contradicts_the_config_names_the_key(
    path: str, configured: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_format(OutputConfig(path=path, **configured))
    assert caught.value.key == key


def test_parquet_to_a_stream_is_refused() -> None:
    with pytest.raises(ConfigError, match="stream") as caught:
        resolve_format(OutputConfig(path="-", format="parquet"), stream=True)
    assert caught.value.key == "output.format"


def test_rotation_asked_of_a_format_that_does_not_rotate_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_writer(
            Format(name="csv", max_records_per_file=10),
            Target(path=tmp_path / "x.part", output=tmp_path / "x"),
        )
    assert caught.value.key == "output.max_records_per_file"
