"""Exit 0 means the exact dataset: each real-server behaviour from issue 9, through the real CLI
against the demo API switched to behave that way. Each case ends either with exit 0 and every
record exactly once, in order, or with exit 1, one clear line, and no file at the output path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harvester.demo import DemoSettings, run_demo

from .conftest import CliResult, expected_bytes, run_cli, write_config_file

RECORDS = 1_000


async def harvest(tmp_path: Path, settings: DemoSettings, **sections: dict[str, Any]) -> CliResult:
    """The CLI against a demo API with `settings`, its config's sections changed by `sections`."""
    async with run_demo(settings) as demo:
        source = sections.pop("source", {})
        path = source.pop("path", "/items")
        config = write_config_file(
            tmp_path, demo.url, source={"url": f"{demo.url}{path}", **source}, **sections
        )
        return await run_cli(str(config))


def assert_exact(tmp_path: Path, result: CliResult, records: int = RECORDS) -> None:
    assert result.code == 0, result.output
    assert (tmp_path / "out.jsonl").read_bytes() == expected_bytes(records)
    assert not (tmp_path / "out.jsonl.checkpoint").exists()


def assert_failed(tmp_path: Path, result: CliResult, *needles: str) -> str:
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert not (tmp_path / "out.jsonl").exists()
    return errors[0]


STREAM = {"path": "/stream", "records": "items"}


# 1. Unknown total: a server capping its page size sends a short first page.
@pytest.mark.parametrize(("workers", "window"), [(1, 1), (1, 64), (16, 1)])
async def test_a_short_first_page_is_not_taken_for_the_end(
    tmp_path: Path, workers: int, window: int
) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=2_000, max_page_size=50),
        source=STREAM,
        pagination={"total": "unknown", "page_size": 100},
        concurrency={"workers": workers, "max_buffered_pages": window},
    )
    assert_exact(tmp_path, result, 2_000)
    assert "at most 50 records per page" in result.output


# Found on Django REST Framework's LimitOffsetPagination (max_limit 100) and datasette: the
# server caps its page size, and the data ends before the second page on the grid begins.
@pytest.mark.parametrize(("workers", "window"), [(1, 1), (16, 64)])
async def test_a_capped_first_page_of_data_ending_before_the_next_page(
    tmp_path: Path, workers: int, window: int
) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=200, max_page_size=100),
        source=STREAM,
        pagination={"total": "unknown", "page_size": 250},
        concurrency={"workers": workers, "max_buffered_pages": window},
    )
    assert_exact(tmp_path, result, 200)


async def test_a_short_last_page_is_proven_by_the_records_after_its_own(tmp_path: Path) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, short_page_at=900),
        source=STREAM,
        pagination={"total": "unknown"},
    )
    assert_failed(tmp_path, result, "page 9", "held 50 records, fewer than page_size (100)")


@pytest.mark.parametrize(("workers", "window"), [(1, 1), (8, 32)])
async def test_a_short_page_mid_run_with_unknown_total_fails(
    tmp_path: Path, workers: int, window: int
) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, short_page_at=300),
        source=STREAM,
        pagination={"total": "unknown"},
        concurrency={"workers": workers, "max_buffered_pages": window},
    )
    assert_failed(tmp_path, result, "page 3 held fewer than page_size")


# 2. Page style with total_pages: a later page holds fewer records than planned.
async def test_a_short_page_counted_by_total_pages_fails(tmp_path: Path) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, short_page_at=500),
        source={"path": "/pages", "records": "results"},
        pagination={"style": "page", "total": None, "total_pages": "body:total_pages"},
    )
    assert_failed(tmp_path, result, "page 5", "held 50 records where 100 were planned")


async def test_total_pages_alone_gives_the_exact_dataset(tmp_path: Path) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, max_page_size=60),
        source={"path": "/pages", "records": "results"},
        pagination={"style": "page", "total": None, "total_pages": "body:total_pages"},
    )
    assert_exact(tmp_path, result)


# 4. Inclusive window bounds.
INCLUSIVE = {
    "style": "cursor",
    "next_cursor": "body:next_cursor",
    "total": None,
    "partition": {"param_from": "id_gte", "param_to": "id_lte", "start": 0, "end": RECORDS},
}


@pytest.mark.parametrize("parts", [1, 7, 25])
async def test_inclusive_filters_with_to_inclusive_give_the_exact_dataset(
    tmp_path: Path, parts: int
) -> None:
    partition = {**INCLUSIVE["partition"], "parts": parts, "to_inclusive": True, "key": "id"}
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, inclusive_filters=True),
        source={"path": "/cursor", "records": "data"},
        pagination={**INCLUSIVE, "partition": partition},
    )
    assert_exact(tmp_path, result)


async def test_inclusive_filters_without_to_inclusive_fail_on_the_key(tmp_path: Path) -> None:
    partition = {**INCLUSIVE["partition"], "parts": 4, "key": "id"}
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, inclusive_filters=True),
        source={"path": "/cursor", "records": "data"},
        pagination={**INCLUSIVE, "partition": partition},
    )
    line = assert_failed(tmp_path, result, "a record's id is 250", "window 0 [0, 250)")
    assert "to_inclusive: true" in line


async def test_inclusive_filters_without_to_inclusive_fail_at_the_seam(tmp_path: Path) -> None:
    partition = {**INCLUSIVE["partition"], "parts": 4}
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, inclusive_filters=True),
        source={"path": "/cursor", "records": "data"},
        pagination={**INCLUSIVE, "partition": partition},
    )
    assert_failed(tmp_path, result, "window 1 starts with the record window 0 ends with")


# 5. Empty pages that carry a continuation.
@pytest.mark.parametrize(
    ("path", "records", "pagination"),
    [
        ("/cursor", "data", {"style": "cursor", "next_cursor": "body:next_cursor"}),
        ("/cursor", "data", {"style": "cursor", "next_cursor": "header:X-Next-Cursor"}),
        ("/link", "results", {"style": "link"}),
        ("/link", "results", {"style": "link", "next_url": "body:next"}),
    ],
)
async def test_empty_pages_with_a_continuation_go_on(
    tmp_path: Path, path: str, records: str, pagination: dict[str, Any]
) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, empty_pages_every=3),
        source={"path": path, "records": records},
        pagination={**pagination, "total": None},
    )
    assert_exact(tmp_path, result)


# 6. Shapes found on real servers.
@pytest.mark.parametrize(
    ("path", "records", "pagination"),
    [
        ("/items", "items", {"total": "header:X-Pagination.total"}),
        (
            "/pages",
            "results",
            {"style": "page", "total": None, "total_pages": "header:X-Pagination.total_pages"},
        ),
        ("/pages", "results", {"style": "page", "total": "header:X-Pagination.total"}),
    ],
)
async def test_the_total_in_a_json_valued_header(
    tmp_path: Path, path: str, records: str, pagination: dict[str, Any]
) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, json_meta_header=True),
        source={"path": path, "records": records},
        pagination=pagination,
    )
    assert_exact(tmp_path, result)


RANGE = {"style": "range", "page_size": 300, "total": None}


async def test_range_asks_no_further_than_the_total(tmp_path: Path) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, range_echo=True),
        source={"path": "/range-items", "records": ""},
        pagination=RANGE,
    )
    assert_exact(tmp_path, result)


@pytest.mark.parametrize("workers", [1, 8])
async def test_range_with_unknown_total_ends_at_an_empty_206(tmp_path: Path, workers: int) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, range_echo=True, range_empty_past_end=True),
        source={"path": "/range-items", "records": ""},
        pagination={**RANGE, "total": "unknown"},
        concurrency={"workers": workers},
    )
    assert_exact(tmp_path, result)


async def test_range_with_no_total_at_all_ends_at_an_empty_206(tmp_path: Path) -> None:
    settings = DemoSettings(
        records=RECORDS, range_echo=True, range_empty_past_end=True, range_no_total=True
    )
    result = await harvest(
        tmp_path,
        settings,
        source={"path": "/range-items", "records": ""},
        pagination={**RANGE, "total": "unknown"},
    )
    assert_exact(tmp_path, result)


PAGES_OPEN = {"style": "page", "page_size": 300, "total": "unknown"}


async def test_a_short_last_page_answered_again_past_the_end_is_the_end(tmp_path: Path) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, repeat_last_past_end=True),
        source={"path": "/pages", "records": "results"},
        pagination=PAGES_OPEN,
    )
    assert_exact(tmp_path, result)


async def test_a_full_last_page_answered_again_past_the_end_is_said_so(tmp_path: Path) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=900, repeat_last_past_end=True),
        source={"path": "/pages", "records": "results"},
        pagination=PAGES_OPEN,
    )
    assert_failed(tmp_path, result, "answers past the end of the data with its last page again")


async def test_allowed_repeats_with_no_total_end_on_a_server_repeating_its_last_page(
    tmp_path: Path,
) -> None:
    # json-server 1.0 answers every page past the last with the last page: with repeated pages
    # allowed and no total, that would be followed forever.
    result = await harvest(
        tmp_path,
        DemoSettings(records=900, repeat_last_past_end=True),
        source={"path": "/pages", "records": "results"},
        pagination={**PAGES_OPEN, "repeated_pages": "allow"},
    )
    assert_failed(tmp_path, result, "all hold the same records", "pagination.total")


async def test_repeated_pages_fail_naming_the_key_that_allows_them(tmp_path: Path) -> None:
    result = await harvest(tmp_path, DemoSettings(records=RECORDS, repeat_page_at=300))
    assert_failed(tmp_path, result, "repeats the records of page 2", "repeated_pages: allow")


async def test_repeated_pages_allowed_are_written_as_sent(tmp_path: Path) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, repeat_page_at=300),
        pagination={"repeated_pages": "allow"},
    )
    assert result.code == 0, result.output
    served = expected_bytes(300) + expected_bytes(100, first=200) + expected_bytes(600, first=400)
    assert (tmp_path / "out.jsonl").read_bytes() == served


# 7. A failed first try leaves no checkpoint, so the corrected config just runs.
@pytest.mark.parametrize(
    ("path", "records", "pagination"),
    [
        ("/cursor", "data", {"style": "cursor", "next_cursor": "body:next_cursor", "total": None}),
        ("/link", "results", {"style": "link", "total": None}),
        ("/stream", "items", {"total": "unknown"}),
        ("/items", "items", {}),
    ],
)
async def test_a_run_that_committed_nothing_leaves_no_checkpoint(
    tmp_path: Path, path: str, records: str, pagination: dict[str, Any]
) -> None:
    async with run_demo(DemoSettings(records=RECORDS)) as demo:
        wrong = {"url": f"{demo.url}{path}", "records": "nope"}
        config = write_config_file(tmp_path, demo.url, source=wrong, pagination=pagination)
        failed = await run_cli(str(config))
        assert_failed(tmp_path, failed, "'nope' not found")
        assert not (tmp_path / "out.jsonl.checkpoint").exists()
        right = {"url": f"{demo.url}{path}", "records": records}
        config = write_config_file(tmp_path, demo.url, source=right, pagination=pagination)
        assert_exact(tmp_path, await run_cli(str(config)))


# Issue 10: a quota whose reset lies beyond retry.max_retry_after.
@pytest.mark.parametrize("on_long_quota", ["wait", "fail"])
async def test_a_long_quota_is_waited_for_or_fails_at_once(
    tmp_path: Path, on_long_quota: str
) -> None:
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, storm_at=3, storm_seconds=1.0, retry_after=1.0),
        retry={"max_retry_after": 0.5, "on_long_quota": on_long_quota},
    )
    if on_long_quota == "wait":
        assert_exact(tmp_path, result)
        assert "quota is spent until" in result.stderr
    else:
        assert_failed(tmp_path, result, "more than retry.max_retry_after", "on_long_quota: wait")


async def test_a_capped_api_ignoring_the_offset_fails_instead_of_ending(tmp_path: Path) -> None:
    # Page 0 comes back short (the cap), and the records after it come back the same as page 0:
    # by page numbers that may be the last page again, by offset it is an API ignoring it.
    result = await harvest(
        tmp_path,
        DemoSettings(records=RECORDS, max_page_size=100, repeat_page_at=100),
        pagination={"total": "unknown", "page_size": 500},
    )
    assert_failed(tmp_path, result, "repeats the records of page 0, asked for from another offset")
