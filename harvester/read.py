"""An answer's bytes -> JSON data, and records -> JSON Lines, every value as the server sent it.

orjson reads a number into a 64-bit integer or a double: fast, and exact for nearly every number
an API sends. A few it would alter: integers beyond 64 bits, more than 15 significant digits, a
value below a double's range (1e-400 becomes 0.0), one above it (1e400 it calls not JSON). A body
that may hold one (16 characters of mantissa, or a negative exponent of three digits) is read by
the standard library instead, where each such number becomes an ExactNumber (a Decimal that keeps
its text) and is written back as that text. Every other value is read and written as orjson does
on both paths, so a record's bytes do not depend on which path its page took.
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import json
import math
import re
import sys
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import orjson

from harvester.numerals import ascii_int

__all__ = [
    "MAX_DEPTH",
    "MAX_RECORD_DEPTH",
    "ExactNumber",
    "NotJSON",
    "cut_short",
    "decode_json",
    "encode_records",
    "exact_as_int64_or_double",
    "collector_paused",
]


# The nesting caps are orjson's own: it reads 1024 levels and writes 254. A body past either
# fails its page with one line (never retried: the same body nests as deep the next time).
MAX_DEPTH = 1024
MAX_RECORD_DEPTH = 254


class ExactNumber(Decimal):
    """A JSON number orjson would not keep exactly: its value, and `text` as the server wrote it."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> ExactNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __str__(self) -> str:
        return self.text  # a cursor made of one goes back as the server wrote it


class NotJSON(ValueError):
    """The body is not JSON in the charset its Content-Type names.

    `ends_early`: it stops in the middle of a value, as a body cut short in transit does.
    """

    def __init__(self, reason: str, *, ends_early: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ends_early = ends_early


def decode_json(body: bytes, content_type: str = "") -> Any:
    """The JSON value in `body`, decoded by the charset that `content_type` names (UTF-8 if none).

    A UTF-8 byte order mark is skipped (and means UTF-8, whatever the header says). Numbers that
    orjson would alter come back as ExactNumber; every integer within 64 bits stays an int.
    Raises NotJSON.
    """
    data = _utf8(body, content_type)
    refusal = None
    if not _may_hold_inexact_number(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            if exc.msg == "depth limit exceeded":
                raise NotJSON(f"nested more than {MAX_DEPTH} levels deep") from None
            refusal = exc  # 1e400 or a lone surrogate escape, perhaps: the slow path reads those
    return _decode_exactly(data, refusal)


def encode_records(records: list[Any]) -> bytes:
    """The records as JSON Lines, each value as decode_json read it.

    Raises NotJSON for a record nested deeper than MAX_RECORD_DEPTH.
    """
    try:
        return b"".join([orjson.dumps(r, option=_LINE) for r in records])
    except orjson.JSONEncodeError as exc:  # an ExactNumber, or a lone surrogate: not every page
        _check_depth(exc)
    try:
        return b"".join([orjson.dumps(r, default=_as_text, option=_LINE) for r in records])
    except orjson.JSONEncodeError as exc:
        _check_depth(exc)
    # A string holding a lone surrogate (sent as an escape like "\ud800"): not UTF-8 text, so
    # orjson refuses it. Those strings are written as escapes again, the rest as usual.
    try:
        return b"".join([_slow_json(r).encode() + b"\n" for r in records])
    except RecursionError:
        raise _too_deep() from None


def _check_depth(exc: orjson.JSONEncodeError) -> None:
    if "Recursion limit" in str(exc):
        raise _too_deep() from None


def _too_deep() -> NotJSON:
    return NotJSON(f"a record nests more than {MAX_RECORD_DEPTH} levels deep")


def cut_short(body: bytes, headers: Mapping[str, str], error: NotJSON) -> bool:
    """Whether a body that is not JSON was cut short: it ends mid-value, or falls short of its
    Content-Length. Such a body may well come whole on a retry; any other will not."""
    if error.ends_early:
        return True
    length = headers.get("Content-Length", "").strip()
    # With a Content-Encoding, Content-Length counts the encoded bytes, not these.
    encoded = headers.get("Content-Encoding", "identity").strip().lower() != "identity"
    expected = ascii_int(length)
    return expected is not None and not encoded and len(body) < expected


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (as it was before, after).

    For reading a page: its thousands of dicts and lists hold no cycle and are freed by reference
    counting once the page is encoded. The collector would only walk them, several times a page:
    about a tenth of what orjson takes to read them.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


# --- charsets ----------------------------------------------------------------------------------

_CHARSET = re.compile(r';\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))', re.IGNORECASE)


def _utf8(body: bytes, content_type: str) -> bytes:
    """`body` as UTF-8 bytes without a byte order mark, decoded from its declared charset."""
    if body.startswith(codecs.BOM_UTF8):
        return body[len(codecs.BOM_UTF8) :]
    match = _CHARSET.search(content_type)
    if match is None:
        return body
    charset = match[1] if match[1] is not None else match[2]
    try:
        codec = codecs.lookup(charset)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise NotJSON(f"unknown charset {charset!r} in Content-Type") from None
    if codec.name in ("utf-8", "utf-8-sig"):
        return body
    try:
        return body.decode(codec.name).encode()
    except UnicodeDecodeError as exc:
        raise _undecodable(exc, charset) from None
    except (UnicodeError, LookupError):  # "undefined" decodes nothing; base64 is not for text
        raise NotJSON(f"charset {charset!r} in Content-Type is not a text encoding") from None


def _undecodable(exc: UnicodeDecodeError, charset: str) -> NotJSON:
    ends_early = exc.end >= len(exc.object) and exc.reason in _END_OF_DATA
    return NotJSON(f"not {charset} at byte {exc.start} ({exc.reason})", ends_early=ends_early)


# What codecs and orjson say of input that stops short.
_END_OF_DATA = ("unexpected end of data", "truncated data")


# --- the exact path ----------------------------------------------------------------------------

# Each byte as the detector sees it: a number's digits and point as "0", "e" for an exponent, and
# ":" for a minus sign and for whatever may come right before a value (":" "," "[" whitespace).
_SHAPES = bytearray(b" " * 256)
for _byte in b"0123456789.":
    _SHAPES[_byte] = ord("0")
for _byte in b":,[ \t\r\n-":
    _SHAPES[_byte] = ord(":")
_SHAPES[ord("e")] = _SHAPES[ord("E")] = ord("e")
_SHAPE = bytes(_SHAPES)
del _SHAPES, _byte
# 16 digits (or 15 and a point) in a value: more than a double's 15 significant digits.
_LONG = b":" + b"0" * 16
# A three-digit negative exponent, and the same in a value (a mantissa of 15 or fewer characters:
# longer ones are _LONG already).
_TINY = b"0e:000"
_TINY_VALUE = re.compile(rb":0{1,15}e:000")


def exact_as_int64_or_double(data: bytes) -> bool:
    """Whether every number in `data` (JSON) is one a parser reading int64 and double keeps
    exactly: no integer beyond 2**53 (16 digits), no double beyond 15 significant digits or
    below its range. A cheap scan that may say no for text in a string. (A number above a
    double's range, 1e400, it does not see: orjson and pyarrow refuse those.)"""
    return not _may_hold_inexact_number(data)


def _may_hold_inexact_number(data: bytes) -> bool:
    """Whether `data` may hold a number orjson would not keep exactly (see _number).

    Two cheap tests first, which every such number passes: 16 characters of a mantissa put 4 at
    offsets divisible by 4, and a negative exponent has its "e-". Only then the precise one.
    """
    long = b"0000" in data[::4].translate(_SHAPE)
    tiny = b"e-" in data or (b"E" in data and b"E-" in data)
    return (long or tiny) and _holds_inexact_number(data)


def _holds_inexact_number(data: bytes) -> bool:
    """Whether `data` has a value that is a number orjson would not keep exactly.

    It may say yes for text in a string ("tel: 0049301234567890"), which only costs time.
    """
    shape = b":" + data.translate(_SHAPE)  # ":" first: a bare number is a value too
    if _LONG in shape:
        return True
    at = shape.find(_TINY)
    while at != -1:
        if _TINY_VALUE.search(shape, max(0, at - 16), at + len(_TINY)):
            return True
        at = shape.find(_TINY, at + 1)
    return False


def _decode_exactly(data: bytes, refusal: orjson.JSONDecodeError | None) -> Any:
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise _undecodable(exc, "UTF-8") from None
    try:
        return json.loads(text, parse_float=_number, parse_int=_integer, parse_constant=_constant)
    except RecursionError:  # Python's own recursion limit, a little below MAX_DEPTH
        raise NotJSON(f"nested more than about {sys.getrecursionlimit()} levels deep") from None
    except ValueError as exc:
        raise _not_json(data, text, exc, refusal) from None


def _not_json(
    data: bytes, text: str, exc: ValueError, refusal: orjson.JSONDecodeError | None
) -> NotJSON:
    """Why `data` is not JSON, from both parsers' refusals, and whether it stops mid-value."""
    if refusal is None:
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError as again:
            refusal = again
    # orjson says so when the input stops mid-value, and where, unless it stopped earlier (at
    # 1e400, say); the standard library then still tells a cut between values or in a string.
    if refusal is not None and refusal.msg in _END_OF_DATA:
        return NotJSON(str(refusal), ends_early=True)
    if not isinstance(exc, json.JSONDecodeError):  # NaN or Infinity
        return NotJSON(str(refusal or exc))
    if not text.strip():  # nothing sent, not something cut
        return NotJSON("empty body")
    if exc.pos >= len(text) or exc.msg.startswith("Unterminated string"):
        return NotJSON(str(exc), ends_early=True)
    if refusal is None or any(word in refusal.msg for word in _READ_SLOWLY):
        return NotJSON(str(exc))
    return NotJSON(str(refusal))


# What orjson refuses and the standard library reads (1e400, "\ud800"): not the fault then.
_READ_SLOWLY = ("infinity", "surrogate")


def _number(token: str) -> float | ExactNumber:
    """A number with a fraction or an exponent: a float where orjson would read the same float,
    an ExactNumber where a float would not hold it."""
    mantissa, _, exponent = token.lower().partition("e")
    if len(mantissa.lstrip("-")) < 16 and not (exponent.startswith("-") and len(exponent) > 3):
        value = float(token)
        if math.isfinite(value):
            return value
    return ExactNumber(token)


def _integer(token: str) -> int | ExactNumber:
    """An int within 64 bits (as orjson reads it), an ExactNumber beyond."""
    if len(token) < 19 or -(2**63) <= ExactNumber(token) < 2**64:
        return int(token)
    return ExactNumber(token)


def _constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


# --- writing -----------------------------------------------------------------------------------

_LINE = orjson.OPT_APPEND_NEWLINE


def _as_text(value: Any) -> orjson.Fragment:
    if isinstance(value, ExactNumber):
        return orjson.Fragment(value.text)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _slow_json(value: Any) -> str:
    """`value` as compact JSON, by hand: orjson's text, and a lone surrogate as an escape."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_slow_json(k)}:{_slow_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_slow_json(v) for v in value) + "]"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
    return orjson.dumps(value, default=_as_text).decode()


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
