"""`harvester init URL` through the CLI, against the demo API (and two tiny APIs of its own) on
loopback: the config it writes harvests the whole dataset exactly, in at most 20 requests
counted by the server, and what it cannot prove it refuses with nothing written."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from harvester.demo import DemoServer, DemoSettings, expected_record, run_demo
from harvester.demo.pages import offset_page
from harvester.demo.records import EncodedRecords
from harvester.demo.server import serve

from .conftest import CliResult, expected_bytes, run_cli

# Not a multiple of any usual page size: a last short page, and a wrong size shows.
DATASET = 2_345
BUDGET = 20  # requests per init, token and discovery included
VAR = "INIT_TEST_SECRET"
DEFAULT_VAR = "HARVESTER_CLIENT_SECRET"
SECRET = "demo-secret"  # the demo API's client secret


def environment(**variables: str) -> dict[str, str]:
    """This process's environment (PYTHONPATH included) without any client secret, plus these."""
    inherited = {k: v for k, v in os.environ.items() if k not in (VAR, DEFAULT_VAR)}
    return {**inherited, **variables}


def credentials(base_url: str) -> list[str]:
    token_url = f"{base_url}/oauth2/token"
    return ["--token-url", token_url, "--client-id", "demo", "--client-secret-env", VAR]


def served(demo: DemoServer | None) -> int:
    """Every request the demo API was sent: data (refused ones too) and token requests."""
    return 0 if demo is None else demo.stats.data_requests + demo.stats.token_requests


@dataclass
class Init:
    result: CliResult
    config: Path  # where -o pointed: folder/config.yaml
    requests: int  # as the demo API counted them; 0 for the tiny APIs

    @property
    def written(self) -> list[str]:
        """What is in the config's folder now (it was empty before init ran)."""
        return sorted(os.listdir(self.config.parent))


async def run_init(
    url: str,
    tmp_path: Path,
    *flags: str,
    demo: DemoServer | None = None,
    env: dict[str, str] | None = None,
) -> Init:
    """`harvester init URL -o config.yaml --pace 0 FLAGS` in tmp_path/init, the client secret
    in VAR unless `env` says otherwise; checks what every run must: no traceback, no secret."""
    folder = tmp_path / "init"
    folder.mkdir(exist_ok=True)
    before = served(demo)
    result = await run_cli(
        "init", url, "-o", "config.yaml", "--pace", "0", *flags,
        env=environment(**{VAR: SECRET}) if env is None else env,
        cwd=folder,
    )  # fmt: skip
    assert "Traceback" not in result.output, result.output
    assert SECRET not in result.output
    return Init(result, folder / "config.yaml", served(demo) - before)


def assert_written(init: Init) -> dict[str, Any]:
    """Exit 0, the config alone in its folder (no half-harvested output beside it), within the
    budget, its secret as ${VAR}; returns the config."""
    assert init.result.code == 0, init.result.output
    assert init.written == ["config.yaml"]
    assert init.requests <= BUDGET
    assert init.result.stdout.strip(), "no summary on stdout"
    text = init.config.read_text()
    assert SECRET not in text
    config = yaml.safe_load(text)
    assert isinstance(config, dict)
    return config


def assert_refused(init: Init, codes: tuple[int, ...], *needles: str) -> None:
    """Exit with one of `codes`, each needle in what init said, and nothing written."""
    assert init.result.code in codes, init.result.output
    for needle in needles:
        assert needle.lower() in init.result.output.lower(), init.result.output
    assert init.written == []


async def harvest_with(init: Init, name: str) -> bytes:
    """Run `harvester CONFIG` from another folder; the output lands beside the config."""
    result = await run_cli(
        str(init.config), env=environment(**{VAR: SECRET}), cwd=init.config.parent.parent
    )
    assert result.code == 0, result.output
    assert SECRET not in result.output
    return (init.config.parent / f"{name}.jsonl").read_bytes()


def detected(config: dict[str, Any]) -> dict[str, Any]:
    """The config's pagination with the defaults init leaves out filled in."""
    pagination = {"style": "offset", **(config.get("pagination") or {})}
    totals = {"offset": "body:total", "page": "body:total", "range": "content-range"}
    pagination.setdefault("total", totals.get(pagination["style"], "unknown"))
    if pagination["style"] == "link":
        pagination.setdefault("next_url", "link-header")
    return pagination


# Every pagination family of the demo API, each telling the total or the next page one way
# only, and the pagination init must find for it. /link's links carry an opaque token: with
# ?offset= in them, /link is also plain offset pages, which init would rightly take instead.
FAMILIES: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "offset, total in the body": (
        "items", {"totals_in": "body"}, {"style": "offset", "total": "body:total"}
    ),
    "offset, X-Total-Count": (
        "items", {"totals_in": "header"}, {"style": "offset", "total": "header:X-Total-Count"}
    ),
    "Range and Content-Range": (
        "range-items", {}, {"style": "range", "total": "content-range"}
    ),
    "page numbers with a count": ("pages", {}, {"style": "page"}),
    "cursor in the body": (
        "cursor", {"next_cursor_in": "body"}, {"style": "cursor", "next_cursor": "body:next_cursor"}
    ),
    "cursor in X-Next-Cursor": (
        "cursor", {"next_cursor_in": "header"},
        {"style": "cursor", "next_cursor": "header:X-Next-Cursor"},
    ),
    "next link in the body": (
        "link", {"next_link_in": "body", "opaque_links": True},
        {"style": "link", "next_url": "body:next"},
    ),
    "next link in the Link header": (
        "link", {"next_link_in": "header", "opaque_links": True},
        {"style": "link", "next_url": "link-header"},
    ),
    "unknown total": ("stream", {}, {"style": "offset", "total": "unknown"}),
}  # fmt: skip


@pytest.mark.parametrize(("name", "switches", "found"), FAMILIES.values(), ids=FAMILIES.keys())
async def test_init_writes_a_config_that_harvests_each_family_exactly(
    tmp_path: Path, name: str, switches: dict[str, Any], found: dict[str, str]
) -> None:
    async with run_demo(DemoSettings(records=DATASET, **switches)) as demo:
        url = f"{demo.url}/{name}"
        init = await run_init(url, tmp_path, *credentials(demo.url), demo=demo)
        config = assert_written(init)
        assert f"/{name}" in init.result.stderr  # each request shown as it goes
        assert found.items() <= detected(config).items(), config
        assert config["auth"]["client_secret"] == f"${{{VAR}}}"
        assert config["output"]["path"] == f"{name}.jsonl"
        harvested = await harvest_with(init, name)
    assert harvested == expected_bytes(DATASET)


@pytest.mark.parametrize(
    "limits",
    # A storm makes the second data request a 429 whatever the timing; 2 requests a second
    # (bursts of 2, Retry-After: 1) refuse init's third in a row at --pace 0 most of the time.
    [{"storm_at": 2, "storm_seconds": 0.5}, {"rate_limit": 2}],
    ids=["429s from the second data request on", "2 requests a second"],
)
async def test_a_429_during_init_is_waited_out(tmp_path: Path, limits: dict[str, Any]) -> None:
    async with run_demo(DemoSettings(records=DATASET, **limits)) as demo:
        url = f"{demo.url}/items"
        init = await run_init(url, tmp_path, *credentials(demo.url), demo=demo)
        assert_written(init)
        storm_429s = demo.stats.faults["429_storm"]
        harvested = await harvest_with(init, "items")
    assert harvested == expected_bytes(DATASET)
    if "storm_at" in limits:
        # Retry-After (1 s) outlasts the 0.5 s storm: one wait, not a volley of retries.
        assert storm_429s == 1


@contextlib.asynccontextmanager
async def open_api(*, paged: bool) -> AsyncIterator[tuple[str, list[str]]]:
    """An API without a token: /items as the demo API's offset pages (total in the body and in
    X-Total-Count); with paged=False it ignores every parameter and always answers the first
    page, with no next link. Yields its base URL and the requests it was sent."""
    records, seen = EncodedRecords(), list[str]()

    async def items(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        query = request.query if paged else {}
        answer = offset_page(query, total=DATASET, max_page_size=1000, records=records)
        headers = {**answer.headers, "Content-Type": answer.content_type}
        return web.Response(status=answer.status, body=answer.body, headers=headers)

    app = web.Application()
    app.router.add_get("/items", items)
    async with serve(app) as url:
        yield url, seen


async def test_an_api_answering_without_a_token_gets_a_config_without_auth(
    tmp_path: Path,
) -> None:
    async with open_api(paged=True) as (url, seen):
        init = await run_init(f"{url}/items", tmp_path, env=environment())
        config = assert_written(init)
        assert len(seen) <= BUDGET
        assert "auth" not in config
        harvested = await harvest_with(init, "items")
    assert harvested == expected_bytes(DATASET)


# Refusals: exit 2 for usage and bad input, 1 for what init could not decide; nothing written.


async def test_an_existing_config_is_kept_without_force(tmp_path: Path) -> None:
    mine = tmp_path / "init" / "config.yaml"
    mine.parent.mkdir()
    mine.write_text("# mine\n")
    async with run_demo(DemoSettings(records=DATASET)) as demo:
        url, flags = f"{demo.url}/items", credentials(demo.url)
        kept = await run_init(url, tmp_path, *flags, demo=demo)
        assert kept.result.code == 2 and "config.yaml" in kept.result.output
        assert mine.read_text() == "# mine\n"
        replaced = await run_init(url, tmp_path, *flags, "--force", demo=demo)
    assert_written(replaced)
    assert mine.read_text() != "# mine\n"


@pytest.mark.parametrize("variable", [VAR, DEFAULT_VAR])
async def test_an_unset_secret_variable_is_named(tmp_path: Path, variable: str) -> None:
    async with run_demo(DemoSettings(records=DATASET)) as demo:
        flags = credentials(demo.url)
        if variable == DEFAULT_VAR:  # --client-id alone: the secret is in the default variable
            flags = flags[:-2]
        init = await run_init(f"{demo.url}/items", tmp_path, *flags, env=environment())
    assert_refused(init, (2,), variable)


async def test_a_401_without_auth_flags_says_which_flags_to_give(tmp_path: Path) -> None:
    async with run_demo(DemoSettings(records=DATASET)) as demo:
        init = await run_init(f"{demo.url}/items", tmp_path, demo=demo)
    assert_refused(init, (1, 2), "401", "--token-url", "--client-id")


async def test_pages_that_cannot_be_proven_write_nothing(tmp_path: Path) -> None:
    async with open_api(paged=False) as (url, seen):
        init = await run_init(f"{url}/items", tmp_path, env=environment())
    assert_refused(init, (1,), "pagination")
    assert len(seen) <= BUDGET


async def test_max_requests_is_a_hard_budget(tmp_path: Path) -> None:
    # Seven requests make the demo's /items config (token, three questions, token and two
    # pages to verify it): five are too few, and init stops short instead of going over.
    async with run_demo(DemoSettings(records=DATASET)) as demo:
        url, flags = f"{demo.url}/items", credentials(demo.url)
        init = await run_init(url, tmp_path, *flags, "--max-requests", "5", demo=demo)
    assert_refused(init, (1,))
    assert init.requests <= 5


async def test_check_prints_a_sample_and_the_planned_requests(tmp_path: Path) -> None:
    async with run_demo(DemoSettings(records=DATASET, max_page_size=500)) as demo:
        url = f"{demo.url}/items"
        init = await run_init(url, tmp_path, *credentials(demo.url), "--check", demo=demo)
    assert_written(init)
    out = init.result.stdout
    assert expected_record(0)["name"] in out and expected_record(1)["name"] in out
    # The pages of the largest size the server honours, with or without the token request.
    pages = math.ceil(DATASET / 500)
    assert re.search(rf"\b({pages}|{pages + 1}) requests\b", out), out
