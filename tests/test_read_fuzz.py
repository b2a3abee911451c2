"""Fuzzing the response interpreter: an answer (status, headers, body) -> records, total, next.

Whatever the body and headers, interpreting an answer ends in one of two ways: a page whose
JSON Lines hold exactly the records the body holds, each value as sent, or one of harvester's own
errors (or the retryable InvalidBody, for a body cut short). Never a traceback, never a page that
would put something else in the file.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, cast

import aiohttp
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from harvester.auth import TokenManager
from harvester.chains import make_chain_planner
from harvester.config import Config, parse_config
from harvester.errors import HarvesterError
from harvester.fetch import Fetched
from harvester.page_reader import PageReader
from harvester.pagination import Planner, make_planner
from harvester.retry import InvalidBody
from harvester.stats import Stats
from tests.conftest import no_wait_policy

URL_ = "http://127.0.0.1:9/items"


def _config(pagination: dict[str, Any]) -> Config:
    raw = {
        "source": {"url": URL_, "records": "items"},
        "pagination": pagination,
        "output": {"path": "unused.jsonl"},
    }
    return parse_config(raw, environ={})


def _reader(config: Config) -> PageReader:
    # Reading touches neither the session nor the network: none is made.
    session = cast(aiohttp.ClientSession, None)
    policy, stats = no_wait_policy(), Stats()
    tokens = TokenManager(config.auth, session, policy, stats)
    return PageReader(config, tokens)


OFFSET = _config({"style": "offset", "page_size": 3})
LINK = _config({"style": "link", "next_url": "body:next", "page_size": 3})
CASES: list[tuple[PageReader, Planner]] = [
    (_reader(OFFSET), make_planner(OFFSET.pagination)),
    (_reader(LINK), make_chain_planner(LINK.pagination, LINK.source)),
]

# JSON values; numbers are drawn as text too (below), where orjson would alter some.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.text(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
# Number literals as a server may write them: long mantissas, exponents past a double's range.
_number_texts = st.from_regex(
    r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _often(draw: st.DrawFn) -> bool:
    """True three times in four."""
    return draw(st.integers(min_value=0, max_value=3)) > 0


@st.composite
def _json_bodies(draw: st.DrawFn) -> bytes:
    """A page as an API might send it, or almost: cut short, re-encoded, wrapped oddly."""
    records = draw(st.lists(st.one_of(_values.map(_dumps), _number_texts), max_size=5))
    items = "[" + ", ".join(records) + "]" if _often(draw) else _dumps(draw(_values))
    page = {}
    if _often(draw):  # the offset style needs one on the first page
        page["total"] = draw(st.integers(min_value=0, max_value=10))
    elif draw(st.booleans()):
        page["total"] = draw(st.one_of(st.integers(min_value=-5, max_value=10**20), _scalars))
    if draw(st.booleans()):
        page["next"] = draw(st.one_of(st.text(), st.sampled_from(["/items?p=2", "file:///x"])))
    fields = "".join(f", {_dumps(k)}: {_dumps(v)}" for k, v in page.items())
    text = '{"items": ' + items + fields + "}" if _often(draw) else _dumps(draw(_values))
    data = text.encode("utf-8", "surrogatepass")
    if not _often(draw):
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    if not _often(draw):
        depth = draw(st.sampled_from([10, 255, 300, 1100]))
        data = b'{"items": [' + b"[" * depth + b"]" * depth + b"]}"
    return data


_bodies = st.one_of(st.binary(max_size=200), _json_bodies(), _json_bodies())
_content_types = st.one_of(
    st.just("application/json"),
    st.just("application/json; charset=utf-8"),
    st.just("application/json"),
    st.sampled_from(["", "text/html", "application/json; charset=latin-1", "a; charset=utf-16"]),
    st.text(max_size=30).map(lambda t: f"application/json; charset={t}"),
)
_headers = st.fixed_dictionaries(
    {"Content-Type": _content_types},
    optional={
        "Content-Length": st.one_of(st.integers(min_value=0, max_value=500).map(str), st.text()),
        "Content-Encoding": st.sampled_from(["gzip", "identity", "x"]),
        "Link": st.text(max_size=40),
        "X-Total-Count": st.text(max_size=10),
    },
)


def _exactly(line: bytes | str) -> Any:
    return json.loads(line, parse_float=Decimal, parse_constant=Decimal)


def _expected_records(body: bytes) -> list[Any] | None:
    """The records the stdlib reads in a UTF-8 body, numbers as Decimals; None if it reads none."""
    try:
        data = _exactly(body.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return None
    items = data.get("items") if isinstance(data, dict) else None
    return items if isinstance(items, list) else None


def _check(fetched: Fetched, body: bytes, content_type: str) -> None:
    assert fetched.page.data.endswith(b"\n") or not fetched.page.data
    written = [_exactly(line) for line in fetched.page.data.split(b"\n")[:-1]]
    assert fetched.page.count == len(written)
    if content_type in ("application/json", "application/json; charset=utf-8"):
        assert written == _expected_records(body)


@pytest.mark.parametrize("case", range(len(CASES)), ids=["offset", "link"])
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies, headers=_headers, status=st.sampled_from([200, 206]))
def test_any_answer_is_a_true_page_or_a_harvester_error(
    case: int, body: bytes, headers: dict[str, str], status: int
) -> None:
    reader, planner = CASES[case]
    request = planner.first(0) if case else planner.request(0)  # type: ignore[attr-defined]
    try:
        fetched = reader.parse(planner, request, URL(URL_), status, CIMultiDict(headers), body)
    except (HarvesterError, InvalidBody) as exc:
        event(type(exc).__name__)
        return
    event(f"a page of {min(fetched.page.count, 2)}+ records")
    _check(fetched, body, headers["Content-Type"])
