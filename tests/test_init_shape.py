"""harvester init's reading of one answer, on a table of answers real servers sent."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from multidict import CIMultiDict

from harvester.init.draft import output_name
from harvester.init.page_size import _largest_allowed
from harvester.init.paging import _cursor_params
from harvester.init.probe import Answer
from harvester.init.render import Commented, Document, Section, render, scalar
from harvester.init.shape import (
    Records,
    body_cursor,
    body_next_url,
    body_total,
    change_stamp,
    content_range_total,
    echoed,
    find_records,
    header_cursor,
    header_total,
    increasing_integer,
    json_headers,
    key_field,
)

ROWS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]

# (server, body) -> (records path, total spec, next URL spec, cursor spec)
ANSWERS: list[tuple[str, Any, tuple[str, str | None, str | None, str | None]]] = [
    (
        "DRF PageNumberPagination",
        {"count": 2345, "next": "http://h/page/?page=2", "previous": None, "results": ROWS},
        ("results", "body:count", "body:next", None),
    ),
    (
        "fastapi-pagination Page",
        {"items": ROWS, "total": 2345, "page": 1, "size": 50, "pages": 47},
        ("items", "body:total", None, None),
    ),
    (
        "fastapi-pagination links.Page",
        {
            "items": ROWS,
            "total": 2345,
            "page": 1,
            "size": 50,
            "pages": 47,
            "links": {"first": "/links?page=1", "next": "/links?page=2", "prev": None},
        },
        ("items", "body:total", "body:links.next", None),
    ),
    (
        "datasette, objects",
        {
            "rows": ROWS,
            "suggested_facets": [{"name": "x", "toggle_url": "/x"}],
            "filtered_table_rows_count": 2345,
            "next": "100",
            "next_url": "http://h/data/items.json?_next=100",
            "columns": ["id", "name"],
        },
        ("rows", "body:filtered_table_rows_count", "body:next_url", "body:next"),
    ),
    (
        "Elasticsearch-style hits",
        {"hits": {"total": {"value": 2345, "relation": "eq"}, "hits": ROWS}},
        ("hits.hits", "body:hits.total.value", None, None),
    ),
    (
        "HAL",
        {"_embedded": {"items": ROWS}, "_links": {"next": {"href": "/items?page=2"}}, "total": 9},
        ("_embedded.items", "body:total", "body:_links.next.href", None),
    ),
    (
        "a cursor in meta",
        {"data": ROWS, "meta": {"next_cursor": "abc", "totalCount": 12}},
        ("data", "body:meta.totalCount", None, "body:meta.next_cursor"),
    ),
    ("a bare list", ROWS, ("", None, None, None)),
    (
        "Google style",
        {"items": ROWS, "nextPageToken": "tok"},
        ("items", None, None, "body:nextPageToken"),
    ),
]


@pytest.mark.parametrize(("server", "body", "expected"), ANSWERS, ids=[a[0] for a in ANSWERS])
def test_reads_each_servers_answer(server: str, body: Any, expected: tuple[Any, ...]) -> None:
    path, total, next_url, cursor = expected
    found = find_records(body)
    assert found is not None and found.path == path and found.records == ROWS
    told = body_total(body, found)
    assert (told[0] if told else None) == total
    assert (body_next_url(body) or (None,))[0] == next_url
    assert (body_cursor(body) or (None,))[0] == cursor
    assert key_field(found.records) == "id"


def test_a_count_below_the_records_is_not_a_total() -> None:
    body = {"items": ROWS, "count": 2}  # the page's own count, and wrong at that
    assert body_total(body, Records("items", ROWS)) is None


def test_rows_of_values_are_found_and_flagged() -> None:
    body = {"rows": [[1, "a"], [2, "b"]], "columns": ["id", "name"], "suggested_facets": [{}]}
    found = find_records(body)
    assert found is not None and found.path == "rows" and found.arrays


def test_totals_and_cursors_in_headers() -> None:
    headers = CIMultiDict(
        {"X-Pagination": '{"total": 2345, "total_pages": 24, "page": 1}', "X-Next-Cursor": "c2"}
    )
    assert header_total(headers) == ("header:X-Pagination.total", 2345)
    assert header_cursor(headers) == ("header:X-Next-Cursor", "c2")
    assert echoed([value for _, value in json_headers(headers)], ("page", "_page")) == ["page"]
    assert header_total(CIMultiDict({"X-Total-Count": "77"})) == ("header:X-Total-Count", 77)
    assert content_range_total(CIMultiDict({"Content-Range": "items 0-9/2345"})) == 2345
    assert content_range_total(CIMultiDict({"Content-Range": "items 0-9/*"})) is None


def test_fields_for_partition_and_incremental() -> None:
    records = [
        {"id": 5, "seq": 9, "updated_at": "2024-01-02T00:00:00Z"},
        {"id": 7, "seq": 3, "updated_at": "2024-01-01T00:00:00Z"},
    ]
    assert increasing_integer(records) == "id"
    assert change_stamp(records) == "updated_at"
    assert change_stamp([{"created_at": "2024-01-01T00:00:00Z"}]) is None


@pytest.mark.parametrize(
    ("cursor", "query", "first"),
    [
        (("body:next_cursor", "abc"), {}, "cursor"),
        (("body:nextPageToken", "abc"), {}, "pageToken"),
        (("body:next", "100"), {"_next": "100"}, "_next"),
        (("header:X-Next-Cursor", "abc"), {}, "cursor"),
    ],
)
def test_where_a_cursor_goes_back(
    cursor: tuple[str, str], query: dict[str, str], first: str
) -> None:
    assert _cursor_params(cursor, query)[0] == first


@pytest.mark.parametrize(
    ("body", "status", "allowed"),
    [
        (
            {"detail": [{"msg": "Input should be less than or equal to 100", "input": "1000"}]},
            422,
            100,
        ),
        ({"code": 422, "errors": {"q": ["less than or equal to 100."]}}, 422, 100),
        ({"error": "no such column: limit"}, 400, None),
    ],
)
def test_the_largest_page_a_refusal_names(body: Any, status: int, allowed: int | None) -> None:
    answer = Answer(None, status, CIMultiDict(), body, 0, 0.0)  # type: ignore[arg-type]
    assert _largest_allowed(answer, 50) == allowed


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://h/v1/items", "items.jsonl"),
        ("http://h/data/items.json?_shape=objects", "items.jsonl"),
        ("http://h/page/", "page.jsonl"),
        ("http://h:8080", "data.jsonl"),
        ("http://h/a%20b", "a-20b.jsonl"),
    ],
)
def test_the_output_file_is_named_after_the_collection(url: str, name: str) -> None:
    assert output_name(url) == name


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(JSON)
def test_any_answer_is_read_without_error(body: Any) -> None:
    found = find_records(body) or Records("", [])
    body_total(body, found)
    body_next_url(body)
    body_cursor(body)
    key_field(found.records)
    increasing_integer(found.records)
    change_stamp(found.records)


@given(st.dictionaries(st.sampled_from(["url", "records", "x"]), JSON, min_size=1, max_size=3))
@example({"url": "\x85"})  # NEL: PyYAML wrote it raw in quotes, read back as a space
@example({"records": "a\u2028b\u2029"})
def test_every_scalar_reads_back_as_written(values: dict[str, Any]) -> None:
    section = Section("source")
    for name, value in values.items():
        if not isinstance(value, list | dict):
            section.key(name, value, "a note: with # and : inside")
    if not section.has_keys:
        return
    text = render(Document(["head"], [section]))
    expected = {k: v for k, v in values.items() if not isinstance(v, list | dict)}
    assert yaml.safe_load(text) == {"source": expected}


def test_suggestions_are_comments_only() -> None:
    section = Section("pagination")
    section.key("style", "link", "why")
    section.lines.append(
        Commented("intro", "partition", {"start": 0, "end": "FILL_IN"}, {"end": "x"})
    )
    doc = Document(["head"], [section], [Commented("more", "incremental", {"field": "updated_at"})])
    text = render(doc)
    assert yaml.safe_load(text) == {"pagination": {"style": "link"}}
    assert "#   end: FILL_IN  # x" in text and "# incremental:" in text
    assert scalar("${HARVESTER_CLIENT_SECRET}") == "${HARVESTER_CLIENT_SECRET}"
