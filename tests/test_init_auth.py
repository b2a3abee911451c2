"""`harvester init`'s ways to a token: --issuer's discovery, a bearer header given as ${VAR},
and the flags it refuses; never a secret in the config or in what it says."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from harvester.demo import DemoSettings, run_demo
from harvester.demo.server import serve

from .conftest import expected_bytes
from .test_demo import token as demo_token
from .test_init import (
    DATASET,
    VAR,
    assert_refused,
    assert_written,
    credentials,
    environment,
    harvest_with,
    run_init,
)


@contextlib.asynccontextmanager
async def issuer(document: dict[str, Any] | None) -> AsyncIterator[tuple[str, list[str]]]:
    """An issuer at /tenant serving `document` (naming that issuer) at its OpenID discovery
    path (None: 404 everywhere); yields the issuer URL and the paths asked for."""
    asked: list[str] = []

    async def metadata(request: web.Request) -> web.Response:
        asked.append(request.path)
        if document is None:
            raise web.HTTPNotFound()
        return web.json_response({"issuer": f"{request.url.origin()}/tenant", **document})

    app = web.Application()
    app.router.add_get("/{tail:.*}", metadata)
    async with serve(app) as url:
        yield f"{url}/tenant", asked


async def test_issuer_discovery_fills_in_the_token_url(tmp_path: Path) -> None:
    async with run_demo(DemoSettings(records=DATASET)) as demo:
        token_url = f"{demo.url}/oauth2/token"
        async with issuer({"token_endpoint": token_url}) as (url, asked):
            flags = ["--issuer", url, "--client-id", "demo", "--client-secret-env", VAR]
            init = await run_init(f"{demo.url}/items", tmp_path, *flags, demo=demo)
            config = assert_written(init)
            harvested = await harvest_with(init, "items")
    # Asked by init, then by the two-page harvest that verified the config (a run reads it too).
    assert asked[:2] == ["/tenant/.well-known/openid-configuration"] * 2
    assert config["auth"]["issuer"] == url and "token_url" not in config["auth"]
    assert f"its discovery document names {token_url}" in init.config.read_text()
    shown = re.findall(r"(?m)^\s+\d+\. (?:GET|POST) ", init.result.stderr)
    assert len(shown) == init.requests + 2, init.result.stderr  # + the issuer's two GETs
    assert harvested == expected_bytes(DATASET)


async def test_an_issuer_without_a_token_endpoint_writes_nothing(tmp_path: Path) -> None:
    async with issuer(None) as (url, asked):
        flags = ["--issuer", url, "--client-id", "demo", "--client-secret-env", VAR]
        init = await run_init("http://127.0.0.1:9/items", tmp_path, *flags)
    assert_refused(init, (1,), "--token-url", "token_endpoint")
    assert asked == [
        "/tenant/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/tenant",
    ]


async def test_a_bearer_header_becomes_auth_bearer_with_its_variable(tmp_path: Path) -> None:
    async with run_demo(DemoSettings(records=DATASET, token_lifetime=600)) as demo:
        async with aiohttp.ClientSession() as session:
            token = (await demo_token(session, demo))["Authorization"].removeprefix("Bearer ")
        env = environment(API_TOKEN=token)
        header = "Authorization: Bearer ${API_TOKEN}"
        init = await run_init(f"{demo.url}/items", tmp_path, "--header", header, env=env)
        config = assert_written(init)
        assert token not in init.result.output and token not in init.config.read_text()
    assert config["auth"] == {"type": "bearer", "token": "${API_TOKEN}"}
    assert "headers" not in config["source"]


async def test_a_literal_secret_header_is_refused_and_not_shown(tmp_path: Path) -> None:
    init = await run_init(
        "http://127.0.0.1:9/items",
        tmp_path,
        "--header",
        "X-Api-Key: s3cr3t-value",
        env=environment(),
    )
    assert_refused(init, (2,), "--header X-Api-Key", "${API_TOKEN}")
    assert "s3cr3t-value" not in init.result.output


async def test_client_flags_without_a_token_endpoint_are_refused(tmp_path: Path) -> None:
    init = await run_init("http://127.0.0.1:9/items", tmp_path, "--client-id", "demo")
    assert_refused(init, (2,), "--token-url")


async def test_a_next_link_to_another_origin_is_not_followed_with_the_token(
    tmp_path: Path,
) -> None:
    settings = DemoSettings(
        records=DATASET, opaque_links=True, cross_host_next="http://127.0.0.2:9"
    )
    async with run_demo(settings) as demo:
        init = await run_init(f"{demo.url}/link", tmp_path, *credentials(demo.url), demo=demo)
    assert_refused(init, (1,), "http://127.0.0.2:9", "not followed")
    assert "127.0.0.2:9/link" not in init.result.stderr  # never asked
