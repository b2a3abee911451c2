"""The runner's wiring, against exact answers: a failing page, a changing dataset."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

from harvester.errors import PageFetchError, RecordsError, TotalChangedError
from harvester.runner import run

from .conftest import make_config, no_wait_policy

BASE = "https://api.test"


def page(first: int, count: int, total: int) -> dict[str, Any]:
    return {"items": [{"id": i} for i in range(first, first + count)], "total": total}


def offset(n: int) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(BASE)}/items\?(?=.*\boffset={n}\b).*$")


def serve_token(mocked: aioresponses) -> None:
    mocked.post(f"{BASE}/oauth2/token", payload={"access_token": "t", "expires_in": 3600})


async def test_a_failing_worker_page_fails_the_run_with_its_own_error(
    mock_http: aioresponses, tmp_path: Path
) -> None:
    serve_token(mock_http)
    mock_http.get(offset(0), payload=page(0, 100, 500))
    for n in (100, 200, 400):
        mock_http.get(offset(n), payload=page(n, 100, 500))
    mock_http.get(offset(300), status=404, body="gone")
    out = tmp_path / "items.jsonl"
    config = make_config(BASE, out, concurrency={"workers": 2})
    with pytest.raises(PageFetchError) as caught:  # not an ExceptionGroup
        await run(config, policy=no_wait_policy())
    assert (caught.value.page, caught.value.status) == (3, 404)
    assert not out.exists()


async def test_a_dataset_changing_under_the_run_fails_it_at_that_page(
    mock_http: aioresponses, tmp_path: Path
) -> None:
    serve_token(mock_http)
    mock_http.get(offset(0), payload=page(0, 100, 300))
    mock_http.get(offset(100), payload=page(100, 100, 300))
    mock_http.get(offset(200), payload=page(200, 80, 280))
    out = tmp_path / "items.jsonl"
    config = make_config(BASE, out, concurrency={"workers": 1})
    with pytest.raises(TotalChangedError) as caught:
        await run(config, policy=no_wait_policy())
    error = caught.value
    assert (error.page, error.total_at_start, error.total_now) == (2, 300, 280)
    assert error.url == f"{BASE}/items?offset=200&limit=100"
    assert error.part == f"{out}.part" and "partial data is kept in" in str(error)
    assert not out.exists()
    assert len(Path(error.part).read_bytes().splitlines()) == 200


async def test_pages_shorter_than_planned_with_the_same_total_fail_the_run(
    mock_http: aioresponses, tmp_path: Path
) -> None:
    """The server sends 100 records on page 0 but only 60 later: 120 records would be lost."""
    serve_token(mock_http)
    mock_http.get(offset(0), payload=page(0, 100, 300))
    mock_http.get(offset(100), payload=page(100, 60, 300))
    mock_http.get(offset(200), payload=page(200, 60, 300))
    out = tmp_path / "items.jsonl"
    with pytest.raises(RecordsError, match="would be lost") as caught:
        await run(make_config(BASE, out, concurrency={"workers": 1}), policy=no_wait_policy())
    assert caught.value.page == 1
    assert not out.exists()


async def test_allowed_plain_http_is_a_warning_on_every_run(
    mock_http: aioresponses, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain = "http://api.test"
    mock_http.post(f"{plain}/oauth2/token", payload={"access_token": "t"}, repeat=True)
    mock_http.get(re.compile(rf"^{plain}/items.*"), payload=page(0, 2, 2), repeat=True)
    config = make_config(plain, tmp_path / "o.jsonl", auth={"allow_insecure_http": True})
    with caplog.at_level(logging.WARNING, logger="harvester"):
        first = await run(config, policy=no_wait_policy())
        second = await run(config, policy=no_wait_policy())
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 4  # the client secret to auth.token_url, the token to source.url; twice
    assert sum("the client secret goes over plain http" in line for line in said) == 2
    assert sum("the access token goes over plain http" in line for line in said) == 2
    assert first.warnings == second.warnings == said[:2]
