"""Bytes -> JSON -> JSON Lines, each value as sent: tables of real-looking bodies, properties of any
number and string, and the demo API's encoding switches through the real CLI."""

from __future__ import annotations

import codecs
import gc
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harvester import read
from harvester.demo import DemoSettings, run_demo
from harvester.demo.encodings import encode_answer, expected_lines
from harvester.demo.pages import JSON, Answer, offset_page
from harvester.demo.records import EncodedRecords
from harvester.read import (
    ExactNumber,
    NotJSON,
    collector_paused,
    cut_short,
    decode_json,
    encode_records,
)

from .conftest import SECRET, assert_one_clear_line, run_cli, write_config

# --- decode_json + encode_records: bodies as servers send them -------------------------------

PAGE = b'{"items":[%s],"total":1}'


@pytest.mark.parametrize(
    ("record", "written"),
    [
        # orjson keeps these: they are written as orjson writes them
        (b'{"id":1,"price":19.99,"n":-3}', b'{"id":1,"price":19.99,"n":-3}'),
        (b'{"id": 1, "ratio": 0.1, "at": 1.5e-07}', b'{"id":1,"ratio":0.1,"at":1.5e-7}'),
        (b'{"max_u64":18446744073709551615}', b'{"max_u64":18446744073709551615}'),
        (b'{"min_i64":-9223372036854775808}', b'{"min_i64":-9223372036854775808}'),
        (b'{"big_ok":1E+300,"neg_zero":-0.0}', b'{"big_ok":1e+300,"neg_zero":-0.0}'),
        # a double would alter these: written as sent
        (b'{"id":18446744073709551616}', b'{"id":18446744073709551616}'),
        (b'{"id":-9223372036854775809}', b'{"id":-9223372036854775809}'),
        (b'{"amount":1.00000000000000000001}', b'{"amount":1.00000000000000000001}'),
        (b'{"pi":3.14159265358979323846}', b'{"pi":3.14159265358979323846}'),
        (b'{"huge":1e400,"tiny":1e-400}', b'{"huge":1e400,"tiny":1e-400}'),
        (b'{"sub":4.9406564584124654E-324}', b'{"sub":4.9406564584124654E-324}'),
        (b'{"lead":1.5e-0400}', b'{"lead":1.5e-0400}'),
        (b'{"a": [ 123456789012345678901234567890 ]}', b'{"a":[123456789012345678901234567890]}'),
        # strings and escapes keep their value
        (b'{"s":"caf\\u00e9 \\"q\\" \\\\ \\n \\ud83d\\ude00"}', '{"s":"café \\"q\\" \\\\ \\n 😀"}'),
        (b'{"lone":"\\ud800 x","n":1e400}', b'{"lone":"\\ud800 x","n":1e400}'),
    ],
)
def test_each_value_is_written_as_sent(record: bytes, written: bytes | str) -> None:
    data = decode_json(PAGE % record, "application/json")
    expected = written.encode() if isinstance(written, str) else written
    assert encode_records(data["items"]) == expected + b"\n"


def test_the_collector_is_paused_and_then_as_it_was() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # left off, as the caller had it
    finally:
        gc.enable()


def test_big_numbers_stay_numbers_and_small_ones_plain_ints() -> None:
    data = decode_json(b'{"id":18446744073709551616,"n":7,"total":12,"f":1e400}')
    assert isinstance(data["id"], ExactNumber) and data["id"] == 2**64
    assert str(data["id"]) == "18446744073709551616"  # a cursor made of it goes back as sent
    assert type(data["n"]) is int and type(data["total"]) is int
    assert data["f"] == Decimal("1e400") and str(data["f"]) == "1e400"


def test_a_page_of_exact_numbers_writes_its_ordinary_values_as_any_other_page() -> None:
    ordinary = b'{"id":5,"x":0.30000000000000004,"y":1e22,"s":"\\u00e9"}'
    alone = encode_records(decode_json(PAGE % ordinary)["items"])
    beside = decode_json(b'{"items":[%s,{"id":18446744073709551616}]}' % ordinary)["items"]
    assert encode_records(beside).splitlines()[0] + b"\n" == alone


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"name":"café"}'.encode("iso-8859-1"), "application/json; charset=iso-8859-1"),
        ('{"name":"café"}'.encode("iso-8859-1"), 'application/json;charset="ISO-8859-1"'),
        ('{"name":"café"}'.encode("cp1252"), "application/json; Charset=windows-1252"),
        ('{"name":"café"}'.encode("utf-16"), "application/json; charset=utf-16"),
        (codecs.BOM_UTF8 + '{"name":"café"}'.encode(), "application/json"),
        (codecs.BOM_UTF8 + '{"name":"café"}'.encode(), "application/json; charset=utf-8"),
        ('{"name":"café"}'.encode(), "application/json; charset=utf-8"),
        ('{"name":"café"}'.encode(), ""),
    ],
)
def test_bodies_are_decoded_by_their_charset(body: bytes, content_type: str) -> None:
    assert decode_json(body, content_type) == {"name": "café"}


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"OK\x00 3 rows\r\n#!<<< not json >>>", "text/plain", "unexpected character"),
        (b"<!DOCTYPE html><html><title>Sign in</title>", "text/html", "unexpected character"),
        (b'{"items":[]} trailing', JSON, "unexpected content after document"),
        (b'{"items":[1,]}', JSON, "trailing comma"),
        (b'{"total":NaN}', JSON, "unexpected character"),
        (b"", JSON, "empty"),
        (b'{"a":"\xe9"}', JSON, "not UTF-8 at byte 6"),
        (b"{}", "application/json; charset=klingon", "unknown charset 'klingon'"),
        # Charsets Python knows but cannot decode text with (found by test_read_fuzz).
        (b"\x00", "application/json; charset=UNDEFINED", "'UNDEFINED' in Content-Type is not a"),
        (b"{}", "application/json; charset=base64", "'base64' in Content-Type is not a text"),
        (b"{}", "application/json; charset=rot13", "'rot13' in Content-Type is not a text"),
        (b"[1e400] x", JSON, "Extra data"),
    ],
)
def test_what_is_not_json_is_told_and_not_taken_for_a_cut(
    body: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(NotJSON, match=reason) as caught:
        decode_json(body, content_type)
    assert not caught.value.ends_early
    assert not cut_short(body, {"Content-Length": str(len(body))}, caught.value)


@pytest.mark.parametrize("length", ["¹", " ² ", "٣", "x", ""])
def test_a_content_length_that_is_not_ascii_digits_says_nothing_of_a_cut(length: str) -> None:
    with pytest.raises(NotJSON) as caught:
        decode_json(b"not json", JSON)
    assert not cut_short(b"not json", {"Content-Length": length}, caught.value)


REAL_BODY = (
    '{"items":[{"id":1,"name":"caf\u00e9 \\"q\\" \\u00e9","v":-1.5e-3,"t":true,"f":false,'
    '"n":null,"l":[1,2,{}],"big":18446744073709551616}],"total":  12}'
).encode()


@pytest.mark.parametrize("cut", range(1, len(REAL_BODY)))
def test_a_body_cut_anywhere_is_cut_short(cut: int) -> None:
    body = REAL_BODY[:cut]
    with pytest.raises(NotJSON) as caught:
        decode_json(body, JSON)
    assert cut_short(body, {}, caught.value), caught.value


def test_a_cut_after_a_number_only_the_slow_path_reads_is_cut_short() -> None:
    with pytest.raises(NotJSON) as caught:
        decode_json(b'{"items":[{"n":1e400},{"s":"ab', JSON)
    assert caught.value.ends_early


def test_a_latin1_body_cut_short_is_cut_short() -> None:
    body = '{"items":[{"name":"café"'.encode("iso-8859-1")
    with pytest.raises(NotJSON) as caught:
        decode_json(body, "application/json; charset=iso-8859-1")
    assert cut_short(body, {}, caught.value)


@pytest.mark.parametrize(
    ("headers", "short"),
    [
        ({"Content-Length": "100"}, True),
        ({"Content-Length": "8"}, False),
        ({"Content-Length": "100", "Content-Encoding": "gzip"}, False),
        ({"Content-Length": "junk"}, False),
        ({}, False),
    ],
)
def test_a_body_shorter_than_its_content_length_is_cut_short(
    headers: dict[str, str], short: bool
) -> None:
    body = b"not json"
    with pytest.raises(NotJSON) as caught:
        decode_json(body, JSON)
    assert cut_short(body, headers, caught.value) is short


@pytest.mark.parametrize("pad", range(8))
@pytest.mark.parametrize(
    "number",
    [
        "9007199254740993.5",
        "1234567890123456",
        "1.234567890123456",
        "-12345678901234567890",
        "3e-324",
    ],
)
def test_a_number_just_past_a_double_is_caught_at_any_offset(pad: int, number: str) -> None:
    body = b'{"items":[{"p":"%s","x":%s}]}' % (b"a" * pad, number.encode())
    (line,) = encode_records(decode_json(body)["items"]).splitlines()
    assert line == b'{"p":"%s","x":%s}' % (b"a" * pad, number.encode())


def test_the_demo_pages_take_the_fast_path() -> None:
    """The benchmark's pages: no number there may be altered, and the detector must see that."""
    page = offset_page(
        {"offset": "5000", "limit": "1000"},
        total=200_000,
        max_page_size=1000,
        records=EncodedRecords(),
    )
    assert not read._may_hold_inexact_number(page.body)


# --- properties ------------------------------------------------------------------------------

NUMBER = st.from_regex(
    r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,4})?", fullmatch=True
)


def _read_back(line: bytes) -> Any:
    return json.loads(line, parse_float=Decimal, parse_int=Decimal)


def _same_number(written: Decimal, sent: str) -> bool:
    value = Decimal(sent)
    if value != written:
        return False
    # A double keeps the sign of zero; an integer zero has none to keep.
    return value.is_signed() == written.is_signed() or not any(c in sent for c in ".eE")


@given(
    number=NUMBER,
    spaces=st.sampled_from(["", " ", "\n\t "]),
    pad=st.text("ab", max_size=7),  # every alignment of the number to the detector's sample
)
def test_any_number_keeps_its_value(number: str, spaces: str, pad: str) -> None:
    record = f'{{"id":1,"pad":"{pad}","x":{spaces}{number}{spaces}}}'
    body = f'{{"items":[{record},[{spaces}{number}]]}}'.encode()
    lines = encode_records(decode_json(body, JSON)["items"]).splitlines()
    assert _same_number(_read_back(lines[0])["x"], number)
    assert _same_number(_read_back(lines[1])[0], number)


@given(number=NUMBER)
def test_a_bare_number_keeps_its_value(number: str) -> None:
    (line,) = encode_records([decode_json(number.encode())]).splitlines()
    assert _same_number(_read_back(line), number)


ANY_CHARACTER = st.characters(codec=None, exclude_categories=()) | st.sampled_from("\ud800\udfff")


@given(text=st.text(ANY_CHARACTER), ascii=st.booleans())
def test_any_string_keeps_its_value(text: str, ascii: bool) -> None:
    # Lone surrogates can only travel as escapes (ensure_ascii); everything else either way.
    sent = json.dumps({"s": text, text: 1}, ensure_ascii=ascii or _has_surrogate(text))
    (line,) = encode_records([decode_json(sent.encode())]).splitlines()
    assert json.loads(line) == {"s": text, text: 1}


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=12,
)


@given(value=JSON_VALUES)
def test_both_paths_write_what_orjson_writes(value: Any) -> None:
    """A record's bytes do not depend on the path its page took."""
    sent = orjson.dumps(value)
    fast = orjson.dumps(orjson.loads(sent), option=orjson.OPT_APPEND_NEWLINE)
    assert encode_records([decode_json(sent)]) == fast
    with_big = decode_json(b"[%s,18446744073709551616]" % sent)  # the exact path
    assert encode_records(with_big).splitlines()[0] + b"\n" == fast


# --- the demo API's switches ------------------------------------------------------------------


def test_the_demo_writes_latin1_with_its_charset_and_the_bom_first() -> None:
    page = Answer(200, b'{"items":[%s]}' % orjson.dumps({"id": 3, "name": "x"}))
    latin = encode_answer(page, DemoSettings(charset="iso-8859-1"))
    assert latin.content_type == "application/json; charset=iso-8859-1"
    assert b'"label":"caf\xe9 3"' in latin.body
    bom = encode_answer(page, DemoSettings(bom=True))
    assert bom.body.startswith(codecs.BOM_UTF8) and bom.content_type == JSON
    exact = encode_answer(page, DemoSettings(exact_numbers=True))
    assert b'"big":18446744073709551619,' in exact.body and b'"huge":4e400,' in exact.body
    plain = Answer(200, b"OK", content_type="text/plain")
    assert encode_answer(plain, DemoSettings(charset="iso-8859-1", exact_numbers=True)) is plain


@pytest.mark.parametrize(
    "switches",
    [
        {"exact_numbers": True},
        {"charset": "iso-8859-1"},
        {"bom": True},
        {"exact_numbers": True, "charset": "cp1252", "truncate_rate": 0.05, "seed": 4},
        {"exact_numbers": True, "bom": True, "cut_rate": 0.05, "seed": 5},
    ],
)
async def test_the_harvest_writes_each_value_as_sent(
    tmp_path: Path, switches: dict[str, Any]
) -> None:
    settings = DemoSettings(records=1_000, client_secret=SECRET, **switches)
    async with run_demo(settings) as demo:
        config = write_config(tmp_path, demo.url, retry__max_attempts=8)
        result = await run_cli(str(config))
    assert result.code == 0, result.output
    output = (tmp_path / "out" / "items.jsonl").read_bytes()
    assert output == expected_lines(1_000, settings)


async def test_a_200_that_is_whole_but_not_json_fails_at_once(tmp_path: Path) -> None:
    settings = DemoSettings(records=1_000, client_secret=SECRET, garbage_at=100)
    async with run_demo(settings) as demo:
        config = write_config(tmp_path, demo.url, concurrency__workers=1, retry__max_attempts=8)
        result = await run_cli(str(config))
        asked = demo.stats.endpoints["/items"]
    assert result.code == 1
    assert_one_clear_line(
        result,
        f"page 2 status 200 at {demo.url}/items?offset=100&limit=50",
        "answered text/plain, not JSON",
        "not json >>>",
    )
    assert asked == 3  # pages 0, 1 and 2, each once
    assert not (tmp_path / "out" / "items.jsonl").exists()
