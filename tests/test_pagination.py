"""Page planners, Content-Range, and reading records and totals out of an answer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from multidict import CIMultiDict

from harvester.answer_paths import (
    MissingPath,
    PlanError,
    extract_records,
    lookup,
    parse_content_range,
    read_total,
)
from harvester.config import PaginationConfig
from harvester.pagination import (
    Answer,
    OffsetPlanner,
    PageRecords,
    PageRequest,
    RangePlanner,
    make_planner,
)


def select(
    planner: Any, request: PageRequest, status: int, hdrs: Any, records: list[Any]
) -> PageRecords:
    """planner.select for an answer made of these parts."""
    answer = Answer(status, hdrs, None, records, "http://api.test/items")
    result: PageRecords = planner.select(request, answer)
    return result


def offset_planner(page_size: int = 100, start: int = 0) -> OffsetPlanner:
    return OffsetPlanner(
        page_size=page_size, start=start, offset_param="offset", limit_param="limit"
    )


def range_planner(page_size: int = 100, start: int = 0, unit: str = "items") -> RangePlanner:
    return RangePlanner(page_size=page_size, start=start, unit=unit)


def headers(**values: str) -> CIMultiDict[str]:
    return CIMultiDict({name.replace("_", "-"): value for name, value in values.items()})


def rows(first: int, count: int) -> list[dict[str, int]]:
    return [{"id": i} for i in range(first, first + count)]


# --- OffsetPlanner ---------------------------------------------------------------------------


def test_offset_request_params() -> None:
    request = offset_planner().request(2)
    assert (request.index, request.first, request.size) == (2, 200, 100)
    assert request.params == {"offset": "200", "limit": "100"}
    assert request.headers == {}


def test_offset_param_names_and_start_are_configurable() -> None:
    planner = OffsetPlanner(page_size=50, start=10, offset_param="skip", limit_param="take")
    assert planner.request(0).params == {"skip": "10", "take": "50"}
    assert planner.request(3).params == {"skip": "160", "take": "50"}
    assert planner.request(3).first == 160


@pytest.mark.parametrize(
    ("total", "start", "pages"),
    [
        (0, 0, 0),
        (1, 0, 1),
        (100, 0, 1),
        (1000, 0, 10),
        (1001, 0, 11),
        (999, 0, 10),
        (250, 50, 2),
        (251, 50, 3),
        (50, 50, 0),
        (10, 50, 0),
    ],
)
def test_page_count(total: int, start: int, pages: int) -> None:
    assert offset_planner(start=start).page_count(total) == pages
    assert range_planner(start=start).page_count(total) == pages


def test_offset_with_page_size() -> None:
    planner = OffsetPlanner(page_size=100, start=5, offset_param="o", limit_param="l")
    smaller = planner.with_page_size(40)
    assert smaller == OffsetPlanner(page_size=40, start=5, offset_param="o", limit_param="l")
    assert smaller.request(1).params == {"o": "45", "l": "40"}
    assert planner.page_size == 100


def test_offset_select_takes_the_records() -> None:
    planner = offset_planner(page_size=3)
    request = planner.request(1)
    assert select(planner, request, 200, {}, rows(3, 3)) == PageRecords(rows(3, 3))
    assert select(planner, request, 200, {}, rows(3, 2)).records == rows(3, 2)


def test_offset_select_refuses_more_than_asked() -> None:
    planner = offset_planner(page_size=3)
    with pytest.raises(PlanError):
        select(planner, planner.request(0), 200, {}, rows(0, 4))


@pytest.mark.parametrize("status", [200, 404, 416])
def test_offset_first_page_is_never_past_the_end(status: int) -> None:
    planner = offset_planner()
    assert planner.is_past_end(status, planner.request(0)) is False


def test_offset_404_after_the_first_page_is_past_the_end_when_the_total_is_unknown() -> None:
    assert offset_planner().is_past_end(404, offset_planner().request(3)) is False
    planner = replace(offset_planner(), open_end=True)
    assert planner.is_past_end(404, planner.request(3)) is True
    assert planner.is_past_end(416, planner.request(3)) is False


# --- RangePlanner ----------------------------------------------------------------------------


def test_range_request_header() -> None:
    request = range_planner().request(2)
    assert request.headers == {"Range": "items=200-299"}
    assert (request.first, request.size, request.params) == (200, 100, {})


def test_range_request_custom_unit_and_start() -> None:
    planner = range_planner(page_size=25, start=10, unit="records")
    assert planner.request(0).headers == {"Range": "records=10-34"}
    assert planner.request(2).headers == {"Range": "records=60-84"}


def test_range_with_page_size() -> None:
    smaller = range_planner(page_size=100, unit="rows").with_page_size(10)
    assert smaller == range_planner(page_size=10, unit="rows")
    assert smaller.request(3).headers == {"Range": "rows=30-39"}


def test_range_206_with_matching_content_range() -> None:
    planner = range_planner()
    request = planner.request(2)
    answer = select(
        planner, request, 206, headers(content_range="items 200-299/1000"), rows(200, 100)
    )
    assert answer == PageRecords(rows(200, 100), complete=False)


def test_range_206_short_last_page() -> None:
    planner = range_planner()
    answer = select(
        planner, planner.request(9), 206, headers(Content_Range="items 900-949/950"), rows(900, 50)
    )
    assert answer.records == rows(900, 50)


@pytest.mark.parametrize(
    ("content_range", "count"),
    [
        ("items 100-199/1000", 100),  # another page's records
        ("items 200-299/1000", 99),  # fewer records than announced
        ("items 200-249/1000", 100),  # more records than announced
        ("items 200-400/1000", 201),  # more than the page size
        ("items */1000", 100),  # no range at all
        ("bytes 200-299/1000", 100),  # another unit
        ("nonsense", 100),
    ],
)
def test_range_206_that_does_not_fit_the_page(content_range: str, count: int) -> None:
    planner = range_planner()
    with pytest.raises(PlanError):
        select(
            planner, planner.request(2), 206, headers(Content_Range=content_range), rows(200, count)
        )


def test_range_206_without_content_range() -> None:
    planner = range_planner()
    with pytest.raises(PlanError):
        select(planner, planner.request(0), 206, headers(), rows(0, 100))


@pytest.mark.parametrize("start", [0, 7])
def test_range_200_on_first_page_takes_everything_from_start(start: int) -> None:
    planner = range_planner(page_size=10, start=start)
    answer = select(planner, planner.request(0), 200, headers(), rows(0, 35))
    assert answer == PageRecords(rows(start, 35 - start), complete=True)


def test_range_200_on_a_later_page_takes_its_slice() -> None:
    planner = range_planner(page_size=10)
    answer = select(planner, planner.request(2), 200, headers(), rows(0, 35))
    assert answer == PageRecords(rows(20, 10), complete=False)
    last = select(planner, planner.request(3), 200, headers(), rows(0, 35))
    assert last == PageRecords(rows(30, 5), complete=False)


def test_range_200_on_a_later_page_with_too_few_records() -> None:
    planner = range_planner(page_size=10)
    with pytest.raises(PlanError):
        select(planner, planner.request(5), 200, headers(), rows(0, 35))


@pytest.mark.parametrize(
    ("status", "past"), [(416, True), (200, False), (206, False), (404, False)]
)
def test_range_past_the_end_is_416(status: int, past: bool) -> None:
    planner = range_planner()
    assert planner.is_past_end(status, planner.request(1)) is past


def test_make_planner_follows_the_style() -> None:
    offset = make_planner(
        PaginationConfig(page_size=20, start=3, offset_param="o", limit_param="l")
    )
    assert offset == OffsetPlanner(page_size=20, start=3, offset_param="o", limit_param="l")
    ranged = make_planner(PaginationConfig(style="range", page_size=20, range_unit="rows"))
    assert ranged == RangePlanner(page_size=20, start=0, unit="rows")


# --- parse_content_range ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("items 0-99/1000", (0, 99, 1000)),
        ("items 0-99/*", (0, 99, None)),
        ("items */1000", (None, None, 1000)),
        ("  items 200-299/20000  ", (200, 299, 20000)),
    ],
)
def test_parse_content_range(value: str, expected: tuple[int | None, ...]) -> None:
    assert parse_content_range(value, "items") == expected


def test_parse_content_range_custom_unit() -> None:
    assert parse_content_range("records 5-9/10", "records") == (5, 9, 10)


@pytest.mark.parametrize(
    "value",
    ["bytes 0-99/1000", "records 0-99/1000", "items", "items 0-99", "items a-b/c", "", "garbage"],
)
def test_parse_content_range_refuses(value: str) -> None:
    with pytest.raises(PlanError):
        parse_content_range(value, "items")


# --- lookup and extract_records --------------------------------------------------------------

BODY: dict[str, Any] = {
    "data": {"items": [{"id": 1}, {"id": 2}], "meta": {"total": 2}},
    "pages": [{"cursor": "a"}, {"cursor": "b"}],
    "count": 2,
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", BODY),
        ("count", 2),
        ("data.items", [{"id": 1}, {"id": 2}]),
        ("data.meta.total", 2),
        ("pages.1.cursor", "b"),
        ("data.items.0", {"id": 1}),
    ],
)
def test_lookup(path: str, expected: Any) -> None:
    assert lookup(BODY, path) == expected


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("records", ["data", "pages", "count"]),
        ("data.rows", ["items", "meta"]),
        ("data.meta.total.value", []),
        ("pages.2", []),
        ("pages.¹", []),  # isdigit() holds; int() would refuse it
        ("pages.first", []),
    ],
)
def test_lookup_missing_path_lists_the_keys_there(path: str, keys: list[str]) -> None:
    with pytest.raises(MissingPath) as info:
        lookup(BODY, path)
    assert info.value.path == path
    assert info.value.keys == keys


def test_extract_records() -> None:
    assert extract_records(BODY, "data.items") == [{"id": 1}, {"id": 2}]
    assert extract_records([{"id": 1}], "") == [{"id": 1}]
    assert extract_records({"items": []}, "items") == []


@pytest.mark.parametrize(("body", "path"), [(BODY, "data"), (BODY, "count"), ({"a": 1}, "")])
def test_extract_records_refuses_what_is_not_a_list(body: Any, path: str) -> None:
    with pytest.raises(PlanError):
        extract_records(body, path)


def test_extract_records_missing_path() -> None:
    with pytest.raises(MissingPath) as info:
        extract_records(BODY, "items")
    assert info.value.keys == ["data", "pages", "count"]


# --- read_total ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "body", "expected"),
    [
        ("body:total", {"total": 1000}, 1000),
        ("body:meta.total", {"meta": {"total": 42}}, 42),
        ("body:total", {"total": "1000"}, 1000),
        ("body:total", {"total": 0}, 0),
        ("body:stats.0", {"stats": [7, 8]}, 7),
    ],
)
def test_total_from_the_body(spec: str, body: Any, expected: int) -> None:
    assert read_total(spec, body, headers(), "items") == expected


@pytest.mark.parametrize("spec", ["header:X-Total-Count", "header:x-total-count"])
def test_total_from_a_header_is_case_insensitive(spec: str) -> None:
    assert read_total(spec, {}, CIMultiDict({"X-Total-Count": "1234"}), "items") == 1234


def test_total_from_a_missing_header_is_none() -> None:
    assert read_total("header:X-Total-Count", {"total": 5}, headers(), "items") is None


@pytest.mark.parametrize(
    ("value", "expected"), [("items 0-99/1000", 1000), ("items 0-99/*", None), ("items */50", 50)]
)
def test_total_from_content_range(value: str, expected: int | None) -> None:
    assert read_total("content-range", {}, headers(content_range=value), "items") == expected


def test_a_null_total_means_the_answer_does_not_say() -> None:
    assert read_total("body:total", {"total": None}, headers(), "items") is None


def test_total_without_content_range_is_none() -> None:
    assert read_total("content-range", {}, headers(), "items") is None


def test_total_from_content_range_of_another_unit() -> None:
    with pytest.raises(PlanError):
        read_total("content-range", {}, headers(content_range="bytes 0-9/10"), "items")


@pytest.mark.parametrize(
    ("spec", "body", "hdrs"),
    [
        ("body:total", {"total": "many"}, {}),
        ("body:total", {"total": 12.5}, {}),
        ("body:total", {"total": True}, {}),
        ("body:total", {"total": [1]}, {}),
        ("header:X-Total", {}, {"X-Total": "lots"}),
        ("body:total", {"total": -1}, {}),
        ("body:total", {"total": "-5"}, {}),
        ("header:X-Total", {}, {"X-Total": "-3"}),
    ],
)
def test_unusable_total(spec: str, body: Any, hdrs: dict[str, str]) -> None:
    with pytest.raises(PlanError):
        read_total(spec, body, CIMultiDict(hdrs), "items")


def test_total_missing_from_the_body() -> None:
    with pytest.raises(MissingPath) as info:
        read_total("body:meta.total", {"meta": {"count": 1}}, headers(), "items")
    assert info.value.keys == ["count"]


def test_content_range_units_are_case_insensitive() -> None:
    assert parse_content_range("Items 0-9/10", "items") == (0, 9, 10)
