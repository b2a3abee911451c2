"""Config for the pagination styles page, cursor and link, and for partition windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harvester.chains import make_chain_planner, partition_windows
from harvester.config import Config, PaginationConfig, load_config, parse_config
from harvester.errors import ConfigError

URL = "http://127.0.0.1:8765/items"


def parse(**pagination: Any) -> Config:
    raw = {"source": {"url": URL}, "output": {"path": "out.jsonl"}, "pagination": pagination}
    return parse_config(raw, environ={})


def pagination(**values: Any) -> PaginationConfig:
    return parse(**values).pagination


def config_error(**pagination: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(**pagination)
    return info.value


CURSOR = {"style": "cursor", "next_cursor": "body:next"}
INTS = {"param_from": "id_gte", "param_to": "id_lt", "start": 0, "end": 1000, "parts": 4}
TIMES = {
    "param_from": "since",
    "param_to": "until",
    "start": "2024-01-01T00:00:00Z",
    "end": "2024-01-02T00:00:00Z",
    "parts": 4,
}


# --- the styles and their defaults -----------------------------------------------------------


@pytest.mark.parametrize(
    "section",
    [
        {"style": "page"},
        {"style": "page", "first_page": 0, "page_param": "p", "page_size_param": "per_page"},
        {"style": "cursor", "next_cursor": "body:meta.next_cursor"},
        {"style": "cursor", "next_cursor": "header:X-Next-Cursor"},
        {"style": "cursor", "cursor_from_record": "id", "cursor_param": "after"},
        {"style": "link"},
        {"style": "link", "next_url": "link-header"},
        {"style": "link", "next_url": "body:next"},
        {"style": "link", "next_url": "body:links.next", "allow_cross_host": True},
    ],
)
def test_styles_are_accepted(section: dict[str, Any]) -> None:
    config = pagination(**section)
    for key, value in section.items():
        assert getattr(config, key) == value


def test_page_defaults() -> None:
    config = pagination(style="page")
    assert (config.page_param, config.page_size_param, config.first_page) == (
        "page",
        "page_size",
        1,
    )
    assert (config.total, config.total_pages) == ("body:total", None)
    assert config.total_known is True


def test_cursor_defaults() -> None:
    config = pagination(**CURSOR)
    assert (config.cursor_param, config.cursor_from_record, config.next_url) == (
        "cursor",
        None,
        None,
    )
    assert config.total == "unknown"
    assert config.total_known is False
    assert config.partition is None


def test_link_defaults() -> None:
    config = pagination(style="link")
    assert config.next_url == "link-header"
    assert config.allow_cross_host is False
    assert config.total == "unknown"
    assert config.total_known is False
    assert (config.next_cursor, config.cursor_from_record) == (None, None)


@pytest.mark.parametrize(
    ("section", "total", "known"),
    [
        ({"style": "offset"}, "body:total", True),
        ({"style": "range"}, "content-range", True),
        ({"style": "page"}, "body:total", True),
        ({"style": "page", "total_pages": "body:num_pages"}, "unknown", True),
        ({"style": "page", "total_pages": "header:X-Total-Pages"}, "unknown", True),
        ({"style": "page", "total": "body:count", "total_pages": "body:pages"}, "body:count", True),
        ({"style": "page", "total": "header:X-Total-Count"}, "header:X-Total-Count", True),
        (CURSOR, "unknown", False),
        ({"style": "cursor", "cursor_from_record": "id"}, "unknown", False),
        ({"style": "link"}, "unknown", False),
        ({"style": "link", "next_url": "body:next"}, "unknown", False),
    ],
)
def test_total_defaults(section: dict[str, Any], total: str, known: bool) -> None:
    config = pagination(**section)
    assert config.total == total
    assert config.total_known is known


@pytest.mark.parametrize(
    "section",
    [
        {"style": "offset"},
        {"style": "range"},
        {"style": "page"},
        CURSOR,
        {"style": "cursor", "cursor_from_record": "id"},
        {"style": "link"},
    ],
)
def test_total_unknown_is_accepted_for_every_style(section: dict[str, Any]) -> None:
    config = pagination(**section, total="unknown")
    assert config.total == "unknown"
    assert config.total_known is False


def test_a_page_count_makes_an_unknown_total_known() -> None:
    config = pagination(style="page", total="unknown", total_pages="body:pages")
    assert config.total == "unknown"
    assert config.total_known is True


@pytest.mark.parametrize("first_page", [0, 1])
def test_first_page_0_or_1(first_page: int) -> None:
    assert pagination(style="page", first_page=first_page).first_page == first_page


# --- errors, each with its key ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "detail"),
    [
        ({"style": "cursor"}, "pagination.next_cursor", "exactly one of"),
        (
            {"style": "cursor", "next_cursor": "body:next", "cursor_from_record": "id"},
            "pagination.next_cursor",
            "exactly one of",
        ),
        ({"style": "cursor", "next_cursor": "next"}, "pagination.next_cursor", "body:<dotted"),
        ({"style": "cursor", "next_cursor": "body:"}, "pagination.next_cursor", "body:<dotted"),
        ({"style": "cursor", "next_cursor": "cookie:x"}, "pagination.next_cursor", "body:<"),
        ({"style": "offset", "next_cursor": "body:next"}, "pagination.next_cursor", "cursor"),
        ({"style": "link", "next_cursor": "body:next"}, "pagination.next_cursor", "cursor"),
        ({"style": "page", "next_cursor": "body:next"}, "pagination.next_cursor", "cursor"),
        ({**CURSOR, "next_url": "body:next"}, "pagination.next_url", "style: link"),
        ({"style": "offset", "next_url": "link-header"}, "pagination.next_url", "style: link"),
        ({"style": "link", "next_url": "header:Link"}, "pagination.next_url", "link-header"),
        ({"style": "link", "next_url": "body:"}, "pagination.next_url", "link-header"),
        ({"style": "link", "next_url": "next"}, "pagination.next_url", "link-header"),
        ({"style": "link", "next_url": "Link"}, "pagination.next_url", "link-header"),
        ({"style": "offset", "total_pages": "body:pages"}, "pagination.total_pages", "page"),
        ({**CURSOR, "total_pages": "body:pages"}, "pagination.total_pages", "page"),
        ({"style": "page", "total_pages": "pages"}, "pagination.total_pages", "body:<"),
        ({"style": "page", "first_page": 2}, "pagination.first_page", "<= 1"),
        ({"style": "page", "first_page": -1}, "pagination.first_page", ">= 0"),
        ({"style": "page", "page_param": ""}, "pagination.page_param", "empty"),
        ({"style": "page", "page_size_param": ""}, "pagination.page_size_param", "empty"),
        ({**CURSOR, "cursor_param": ""}, "pagination.cursor_param", "empty"),
        ({"style": "page", "total": "content-range"}, "pagination.total", "style: range"),
        ({"style": "link", "total": "content-range"}, "pagination.total", "style: range"),
        ({"style": "scroll"}, "pagination.style", "one of"),
        ({"style": "link", "allow_cross_host": "yes"}, "pagination.allow_cross_host", "true"),
    ],
)
def test_pagination_errors(section: dict[str, Any], key: str, detail: str) -> None:
    error = config_error(**section)
    assert error.key == key
    assert detail in error.detail


@pytest.mark.parametrize("style", ["offset", "page", "link"])
def test_cursor_from_record_on_another_style_names_its_own_key(style: str) -> None:
    error = config_error(style=style, cursor_from_record="id")
    assert error.key == "pagination.cursor_from_record"


def test_cursor_from_record_on_another_style_is_refused() -> None:
    error = config_error(style="offset", cursor_from_record="id")
    assert "style: cursor" in error.detail


# --- partition -------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["cursor", "link"])
@pytest.mark.parametrize("partition", [INTS, TIMES])
def test_partition_is_accepted_for_chain_styles(style: str, partition: dict[str, Any]) -> None:
    extra = {"next_cursor": "body:next"} if style == "cursor" else {}
    config = pagination(style=style, partition=partition, **extra)
    assert config.partition is not None
    assert (config.partition.start, config.partition.end) == (partition["start"], partition["end"])
    assert config.partition.parts == 4


@pytest.mark.parametrize("style", ["offset", "range", "page"])
def test_partition_needs_a_chain_style(style: str) -> None:
    error = config_error(style=style, partition=INTS)
    assert error.key == "pagination.partition"
    assert "cursor or link" in error.detail


@pytest.mark.parametrize(
    ("changes", "key", "detail"),
    [
        ({"start": 1000, "end": 1000}, "pagination.partition.end", "after start"),
        ({"start": 1000, "end": 0}, "pagination.partition.end", "after start"),
        ({"parts": 0}, "pagination.partition.parts", ">= 1"),
        ({"parts": -3}, "pagination.partition.parts", ">= 1"),
        ({"parts": 10_001}, "pagination.partition.parts", "<= 10000"),
        ({"start": 0, "end": 3, "parts": 4}, "pagination.partition.parts", "span of 3"),
        ({"start": 0, "end": "2024-01-01T00:00:00Z"}, "pagination.partition", "both"),
        ({"start": "2024-01-01T00:00:00Z", "end": 100}, "pagination.partition", "both"),
        ({"param_from": ""}, "pagination.partition.param_from", "empty"),
        ({"param_to": ""}, "pagination.partition.param_to", "empty"),
        ({"start": 1.5}, "pagination.partition.start", "string"),
        ({"start": True}, "pagination.partition.start", "string"),
        ({"start": [0]}, "pagination.partition.start", "string"),
        ({"bogus": 1}, "pagination.partition.bogus", "unknown key"),
    ],
)
def test_integer_partition_errors(changes: dict[str, Any], key: str, detail: str) -> None:
    error = config_error(**CURSOR, partition={**INTS, **changes})
    assert error.key == key
    assert detail in error.detail


@pytest.mark.parametrize("missing", ["param_from", "param_to", "start", "end", "parts"])
def test_partition_keys_are_required(missing: str) -> None:
    partition = {k: v for k, v in INTS.items() if k != missing}
    error = config_error(**CURSOR, partition=partition)
    assert error.key == f"pagination.partition.{missing}"
    assert error.detail == "is required"


@pytest.mark.parametrize(
    ("changes", "key", "detail"),
    [
        ({"start": "yesterday"}, "pagination.partition.start", "ISO-8601"),
        ({"start": "2024-13-01T00:00:00Z"}, "pagination.partition.start", "ISO-8601"),
        ({"start": "100"}, "pagination.partition.start", "ISO-8601"),
        ({"end": "2024-01-02 25:00"}, "pagination.partition.end", "ISO-8601"),
        ({"end": "2024-01-01T00:00:00Z"}, "pagination.partition.end", "after start"),
        ({"end": "2023-12-31T23:00:00Z"}, "pagination.partition.end", "after start"),
        # the same instant written in two zones is an empty span
        ({"end": "2024-01-01T02:00:00+02:00"}, "pagination.partition.end", "after start"),
        ({"end": "2024-01-01T00:00:03Z"}, "pagination.partition.parts", "span of 3"),
    ],
)
def test_time_partition_errors(changes: dict[str, Any], key: str, detail: str) -> None:
    error = config_error(**CURSOR, partition={**TIMES, **changes})
    assert error.key == key
    assert detail in error.detail


def test_a_time_span_of_exactly_parts_seconds_is_accepted() -> None:
    partition = {**TIMES, "end": "2024-01-01T00:00:04Z"}
    config = pagination(**CURSOR, partition=partition)
    assert config.partition is not None
    assert config.partition.end == "2024-01-01T00:00:04Z"


def test_integer_partition_as_wide_as_its_parts_is_accepted() -> None:
    config = pagination(**CURSOR, partition={**INTS, "start": 0, "end": 4, "parts": 4})
    assert config.partition is not None and config.partition.parts == 4


def test_timestamps_in_mixed_zones_are_accepted() -> None:
    partition = {**TIMES, "start": "2024-01-01T02:00:00+02:00", "end": "2024-01-01T08:00:00Z"}
    assert pagination(**CURSOR, partition=partition).partition is not None


def test_a_timestamp_without_a_zone_is_taken_as_utc() -> None:
    partition = {**TIMES, "start": "2024-01-01T00:00:00", "end": "2024-01-01T04:00:00"}
    config = pagination(**CURSOR, partition=partition)
    assert config.partition is not None
    bounds = [w["since"] for w in partition_windows(config.partition)]
    assert bounds == [f"2024-01-01T0{h}:00:00Z" for h in range(4)]


# --- YAML files ------------------------------------------------------------------------------


YAML = """\
source: {{url: {url}, records: items}}
output: {{path: out.jsonl}}
pagination:
  style: cursor
  page_size: 50
  next_cursor: body:next
  partition:
    param_from: since
    param_to: until
    start: {start}
    end: {end}
    parts: {parts}
"""


def load(tmp_path: Path, start: str, end: str, parts: int = 4) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(YAML.format(url=URL, start=start, end=end, parts=parts), encoding="utf-8")
    return load_config(path, environ={})


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (
            "2024-01-01T00:00:00Z",
            "2024-01-01T08:00:00Z",
            ("2024-01-01T00:00:00Z", "2024-01-01T08:00:00Z"),
        ),
        (
            "2024-01-01 00:00:00Z",
            "2024-01-01 08:00:00Z",
            ("2024-01-01T00:00:00Z", "2024-01-01T08:00:00Z"),
        ),
        (
            "2024-01-01T02:00:00+02:00",
            "2024-01-01T10:00:00+02:00",
            ("2024-01-01T02:00:00+02:00", "2024-01-01T10:00:00+02:00"),
        ),
        ("2024-01-01", "2024-01-02", ("2024-01-01", "2024-01-02")),
        (
            '"2024-01-01T00:00:00Z"',
            '"2024-01-01T08:00:00Z"',
            ("2024-01-01T00:00:00Z", "2024-01-01T08:00:00Z"),
        ),
    ],
)
def test_unquoted_yaml_timestamps_become_iso_text(
    tmp_path: Path, start: str, end: str, expected: tuple[str, str]
) -> None:
    config = load(tmp_path, start, end)
    partition = config.pagination.partition
    assert partition is not None
    assert (partition.start, partition.end) == expected
    assert isinstance(partition.start, str) and isinstance(partition.end, str)


def test_unquoted_yaml_timestamps_make_working_windows(tmp_path: Path) -> None:
    config = load(tmp_path, "2024-01-01T00:00:00Z", "2024-01-01T08:00:00Z")
    chain = make_chain_planner(config.pagination, config.source)
    assert chain.chains == 4
    assert [chain.first(k).params for k in range(4)] == [
        {"limit": "50", "since": f"2024-01-01T0{h}:00:00Z", "until": f"2024-01-01T0{h + 2}:00:00Z"}
        for h in (0, 2, 4, 6)
    ]


def test_unquoted_yaml_timestamps_with_an_offset_make_working_windows(tmp_path: Path) -> None:
    config = load(tmp_path, "2024-01-01T02:00:00+02:00", "2024-01-01T10:00:00+02:00", parts=2)
    chain = make_chain_planner(config.pagination, config.source)
    assert [chain.first(k).params["since"] for k in range(2)] == [
        "2024-01-01T02:00:00+02:00",
        "2024-01-01T06:00:00+02:00",
    ]


def test_yaml_integer_bounds_stay_integers(tmp_path: Path) -> None:
    config = load(tmp_path, "0", "20000", parts=8)
    partition = config.pagination.partition
    assert partition is not None
    assert (partition.start, partition.end) == (0, 20000)
    assert partition_windows(partition)[1] == {"since": "2500", "until": "5000"}


def test_a_yaml_error_in_the_partition_names_the_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "2024-01-01T00:00:00Z", "20000")
    assert info.value.key == "pagination.partition"
    assert info.value.source == str(tmp_path / "config.yaml")


def test_a_yaml_timestamp_that_does_not_parse(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "soon", "2024-01-01T08:00:00Z")
    assert info.value.key == "pagination.partition.start"
    assert "ISO-8601" in info.value.detail
