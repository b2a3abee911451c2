"""How the demo API writes a JSON answer's bytes: numbers a double cannot hold, a charset, a BOM.

Real servers send ids beyond 64 bits, decimals with every digit kept, exponents past a double's
range, bodies in a charset other than UTF-8 (declared in Content-Type), and bodies that begin
with a UTF-8 byte order mark. Each switch rewrites the bytes an endpoint built, so every endpoint
gets it alike, and a fault cuts the rewritten bytes.

`expected_lines` is what a harvest must write: every record as the server sent it, in UTF-8.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import replace

import orjson

from .pages import JSON, Answer
from .records import expected_record
from .settings import DEFAULT_CHARSET, DemoSettings

# Every record the demo serves is orjson's bytes of expected_record(i), whose first key is "id".
_RECORD_START = re.compile(rb'\{"id":(\d+),')


def encode_answer(answer: Answer, settings: DemoSettings) -> Answer:
    """`answer` with its bytes as the switches have them: extra fields in every record, then the
    charset (named in Content-Type), then the BOM. Anything but JSON is left alone."""
    if answer.content_type != JSON:
        return answer
    body, content_type = _with_fields(answer.body, settings), answer.content_type
    if settings.charset != DEFAULT_CHARSET:
        body = body.decode().encode(settings.charset)
        content_type = f"{JSON}; charset={settings.charset}"
    if settings.bom:
        body = codecs.BOM_UTF8 + body
    return replace(answer, body=body, content_type=content_type)


def expected_lines(count: int, settings: DemoSettings, first: int = 0) -> bytes:
    """Records first..first+count-1 as a harvest of the demo API with `settings` writes them."""
    return b"".join(
        _with_fields(orjson.dumps(expected_record(i)), settings) + b"\n"
        for i in range(first, first + count)
    )


def _with_fields(body: bytes, settings: DemoSettings) -> bytes:
    """`body` with the switches' fields spliced into each record, right after its id."""
    fields = _fields(settings)
    if fields is None:
        return body
    return _RECORD_START.sub(lambda match: match[0] + fields(int(match[1])), body)


def _fields(settings: DemoSettings) -> Callable[[int], bytes] | None:
    """The extra fields of record i, as JSON text ending in a comma; None when there are none."""
    exact = settings.exact_numbers
    accented = settings.charset != DEFAULT_CHARSET or settings.bom
    if not (exact or accented):
        return None

    def fields(i: int) -> bytes:
        text = b""
        if exact:
            # Written as text: orjson would turn each into a double first.
            text += b'"big":%d,"below":%d,' % (2**64 + i, -(2**63) - 1 - i)
            text += b'"precise":1.000000000000000000%02d,' % (i % 100)
            text += b'"huge":%de400,"tiny":-%d.5E-400,' % (i % 9 + 1, i % 7 + 1)
        if accented:
            text += f'"label":"café {i}",'.encode()
        return text

    return fields
