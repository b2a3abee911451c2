"""auth.issuer: the token endpoint from the issuer's discovery document (OpenID's, then RFC
8414's), through the command line against the demo API, and its failures: a document without a
token endpoint, an auth_method the issuer does not advertise, issuer with token_url."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.demo.mtls import DemoCertificates
from harvester.discovery import discovery_urls, token_endpoint
from harvester.errors import AuthError, ConfigError

from .conftest import (
    SECRET,
    assert_one_clear_line,
    expected_bytes,
    no_wait_policy,
    run_cli,
    write_config_file,
)

RECORDS = 200


@contextlib.asynccontextmanager
async def issuer_demo(**settings: Any) -> AsyncIterator[DemoServer]:
    """The demo API whose issuer is <url>/tenant; client secret SECRET."""
    demo_settings = DemoSettings(
        records=RECORDS, client_secret=SECRET, issuer_path="/tenant", **settings
    )
    async with run_demo(demo_settings) as demo:
        yield demo


def issuer_config(folder: Path, demo: DemoServer, **auth: Any) -> Path:
    changes = {"token_url": None, "issuer": f"{demo.url}/tenant", "client_secret": SECRET}
    return write_config_file(folder, demo.url, auth={**changes, **auth})


@pytest.mark.parametrize("document", ["openid", "oauth"])
async def test_the_token_endpoint_comes_from_either_discovery_document(
    tmp_path: Path, document: str
) -> None:
    async with issuer_demo(discovery_documents=(document,)) as demo:
        result = await run_cli(str(issuer_config(tmp_path, demo)))
        issued = demo.stats.tokens_issued
    assert result.code == 0, result.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == expected_bytes(RECORDS)
    assert issued == 1
    assert f"token endpoint {demo.url}/oauth2/token, from {demo.url}/tenant" in result.stderr
    assert SECRET not in result.output


async def test_a_document_without_a_token_endpoint_fails_naming_the_urls_asked(
    tmp_path: Path,
) -> None:
    async with issuer_demo(discovery_token_endpoint=False) as demo:
        result = await run_cli(str(issuer_config(tmp_path, demo)))
        asked = demo.stats.token_requests
    assert result.code == 2
    openid = f"{demo.url}/tenant/.well-known/openid-configuration (200, no token_endpoint)"
    oauth = f"{demo.url}/.well-known/oauth-authorization-server/tenant (200, no token_endpoint)"
    assert_one_clear_line(result, "auth.issuer: ", openid, oauth, "auth.token_url")
    assert asked == 0 and not (tmp_path / "out.jsonl").exists()


async def test_an_issuer_with_no_document_at_all_says_what_each_url_answered(
    tmp_path: Path,
) -> None:
    async with issuer_demo(discovery_documents=()) as demo:
        result = await run_cli(str(issuer_config(tmp_path, demo)))
    assert result.code == 2
    assert_one_clear_line(result, "/tenant/.well-known/openid-configuration (404)")


async def test_an_auth_method_the_issuer_does_not_advertise_fails_naming_both(
    tmp_path: Path,
) -> None:
    async with issuer_demo(advertised_auth_methods=("private_key_jwt",)) as demo:
        config = issuer_config(tmp_path, demo, auth_method="client_secret_post")
        result = await run_cli(str(config))
        asked = demo.stats.token_requests
    assert result.code == 2
    assert_one_clear_line(
        result, "auth.auth_method: client_secret_post", "(private_key_jwt,", "openid-configuration"
    )
    assert asked == 0  # the secret was not sent


async def test_an_issuer_that_lists_no_auth_methods_is_tried_with_a_warning(
    tmp_path: Path,
) -> None:
    async with issuer_demo(advertised_auth_methods=None) as demo:
        result = await run_cli(str(issuer_config(tmp_path, demo)))
    assert result.code == 0, result.stderr
    warning = "does not list token_endpoint_auth_methods_supported"
    assert any(" WARNING " in line and warning in line for line in result.stderr.splitlines())


@pytest.mark.parametrize(
    ("auth", "said"),
    [
        ({"issuer": "https://login.example.com/t"}, "auth.issuer: cannot go with auth.token_url"),
        (
            {"issuer": "http://login.example.com/t", "token_url": None},
            "auth.issuer: would send the client secret over plain http",
        ),
    ],
)
async def test_an_issuer_with_token_url_or_over_plain_http_is_refused(
    tmp_path: Path, auth: dict[str, Any], said: str
) -> None:
    auth = {**auth, "client_secret": SECRET}
    config = write_config_file(tmp_path, "https://api.example.com", auth=auth)
    result = await run_cli(str(config))
    assert result.code == 2
    assert_one_clear_line(result, said)


async def test_discovery_and_tls_client_auth_over_mutual_tls(tmp_path: Path) -> None:
    certificates = DemoCertificates("demo")
    certificates.write(tmp_path / "tls")
    settings = DemoSettings(records=RECORDS, issuer_path="/tenant", client_cert_required="both")
    async with run_demo(settings, ssl_context=certificates.server_context()) as demo:
        auth = {"auth_method": "tls_client_auth", "client_secret": None, "token_url": None}
        tls = {"ca_bundle": "tls/ca.pem", "client_cert": "tls/client.pem"}
        (tmp_path / "tls" / "client.pem").write_bytes(
            certificates.client.private_key_and_cert_chain_pem.bytes()  # key and cert, one file
        )
        auth["issuer"] = f"{demo.url}/tenant"
        config = write_config_file(tmp_path, demo.url, auth=auth, tls=tls)
        result = await run_cli(str(config))
    assert result.code == 0, result.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == expected_bytes(RECORDS)


@pytest.mark.parametrize(
    ("issuer", "openid", "oauth"),
    [
        (
            "https://login.example.com",
            "https://login.example.com/.well-known/openid-configuration",
            "https://login.example.com/.well-known/oauth-authorization-server",
        ),
        (
            "https://login.example.com/tenant/",
            "https://login.example.com/tenant/.well-known/openid-configuration",
            "https://login.example.com/.well-known/oauth-authorization-server/tenant",
        ),
    ],
)
def test_discovery_urls_follow_openid_then_rfc_8414(issuer: str, openid: str, oauth: str) -> None:
    assert [str(url) for url in discovery_urls(issuer)] == [openid, oauth]


ISSUER = "https://login.example.com/tenant"
OPENID = ISSUER + "/.well-known/openid-configuration"
DOCUMENT = {"issuer": ISSUER, "token_endpoint": "https://login.example.com/token"}


async def test_a_document_speaking_for_another_issuer_is_not_used(mock_http: aioresponses) -> None:
    # RFC 8414 3.3: metadata whose issuer is not the one asked about must not be used.
    mock_http.get(OPENID, payload={**DOCUMENT, "issuer": "https://evil.example.com/tenant"})
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigError, match="speaks for the issuer") as caught:
            await token_endpoint(session, ISSUER, "client_secret_basic", warn=lambda _: None)
    assert caught.value.key == "auth.issuer" and "evil.example.com" in str(caught.value)


@pytest.mark.parametrize(
    ("said", "warned"), [(ISSUER + "/", False), (None, True)], ids=["slash", "unnamed"]
)
async def test_a_trailing_slash_is_the_same_issuer_and_an_unnamed_one_warns(
    mock_http: aioresponses, said: str | None, warned: bool
) -> None:
    document = {**DOCUMENT, "token_endpoint_auth_methods_supported": ["client_secret_basic"]}
    if said is None:
        del document["issuer"]
    else:
        document["issuer"] = said
    mock_http.get(OPENID, payload=document)
    warnings: list[str] = []
    async with aiohttp.ClientSession() as session:
        url = await token_endpoint(session, ISSUER, "client_secret_basic", warn=warnings.append)
    assert url == DOCUMENT["token_endpoint"]
    assert any("does not name its issuer" in w for w in warnings) is warned


async def test_a_503_from_the_issuer_is_retried_not_taken_for_no_document(
    mock_http: aioresponses,
) -> None:
    mock_http.get(OPENID, status=503)
    mock_http.get(OPENID, payload=DOCUMENT)
    warnings: list[str] = []
    async with aiohttp.ClientSession() as session:
        url = await token_endpoint(
            session, ISSUER, "client_secret_basic", policy=no_wait_policy(), warn=warnings.append
        )
    assert url == DOCUMENT["token_endpoint"]
    assert len(warnings) == 1 and "token_endpoint_auth_methods_supported" in warnings[0]


async def test_an_issuer_that_stays_down_fails_as_an_outage(mock_http: aioresponses) -> None:
    mock_http.get(OPENID, status=503, repeat=True)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(AuthError, match="could not be read") as caught:
            await token_endpoint(session, ISSUER, "client_secret_basic", policy=no_wait_policy())
    assert caught.value.url == OPENID and caught.value.status == 503
