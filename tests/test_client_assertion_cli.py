"""private_key_jwt and client_secret_jwt (RFC 7523 section 2.2) through the real CLI, against
the demo API checking every assertion: signature, aud, exp with a few seconds of skew, and jti
replay. None of the runs may show key material, a password or an assertion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harvester.client_assertion import make_assertion, signing_key
from harvester.config import AuthConfig, Secret
from harvester.demo import DemoSettings, run_demo
from harvester.demo.launch import demo_process
from tests.conftest import (
    SECRET,
    CliResult,
    assert_one_clear_line,
    expected_bytes,
    run_cli,
    write_config,
)
from tests.jwt_keys import body_lines, jwks, new_key, pem

RECORDS = 300
PASSWORD = "key-pass-7Hq2"


def jwt_demo(**changes: Any) -> DemoSettings:
    return DemoSettings(records=RECORDS, client_secret=SECRET, **changes)


def key_config(folder: Path, url: str, **auth: Any) -> Path:
    """write_config's config, authenticated by private_key_jwt with `auth` merged in."""
    changes = {"auth__auth_method": "private_key_jwt", "auth__client_secret": None}
    return write_config(folder, url, **changes, **{f"auth__{k}": v for k, v in auth.items()})


def assert_nothing_secret(result: CliResult, *secrets: str) -> None:
    """No PEM line, no password, no assertion (a JWT begins eyJ) and no client secret shown."""
    shown = result.output
    assert "eyJ" not in shown
    assert SECRET not in shown
    for secret in secrets:
        for line in body_lines(secret) or [secret]:
            assert line not in shown


def assert_harvested(result: CliResult, folder: Path) -> None:
    assert result.code == 0, result.stderr
    assert (folder / "out" / "items.jsonl").read_bytes() == expected_bytes(RECORDS)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
async def test_private_key_jwt_harvests_with_each_algorithm(tmp_path: Path, alg: str) -> None:
    key = new_key(alg)
    key_file = tmp_path / "client.pem"
    key_file.write_text(pem(key))
    async with run_demo(jwt_demo(assertion_jwks=jwks(("k1", key)))) as server:
        config = key_config(tmp_path, server.url, private_key=str(key_file), key_id="k1")
        if alg != "RS256":  # RS256 is the default
            config = key_config(
                tmp_path, server.url, private_key=str(key_file), key_id="k1", signing_alg=alg
            )
        result = await run_cli(str(config), "--log-level", "DEBUG")
        assert server.spent_assertions == server.stats.token_requests == 1
    assert_harvested(result, tmp_path)
    assert_nothing_secret(result, pem(key))


async def test_an_encrypted_key_from_a_variable_with_its_password(tmp_path: Path) -> None:
    key = new_key("ES256")
    text = pem(key, PASSWORD)
    env = {**os.environ, "CLIENT_KEY": text, "KEY_PASSWORD": PASSWORD}
    async with run_demo(jwt_demo(assertion_jwks=jwks(("k1", key)))) as server:
        config = key_config(
            tmp_path,
            server.url,
            private_key="${CLIENT_KEY}",
            private_key_password="${KEY_PASSWORD}",
            signing_alg="ES256",
        )
        result = await run_cli(str(config), "--log-level", "DEBUG", env=env)
        printed = await run_cli(str(config), "--print-config", env=env)
    assert_harvested(result, tmp_path)
    assert printed.code == 0, printed.stderr
    assert_nothing_secret(result, text, PASSWORD)
    assert_nothing_secret(printed, text, PASSWORD)


async def test_client_secret_jwt_signs_with_the_secret(tmp_path: Path) -> None:
    async with run_demo(jwt_demo(secret_assertions=True)) as server:
        config = write_config(tmp_path, server.url, auth__auth_method="client_secret_jwt")
        result = await run_cli(str(config), "--log-level", "DEBUG")
        assert server.spent_assertions == 1
    assert_harvested(result, tmp_path)
    assert_nothing_secret(result)


async def test_client_secret_jwt_with_the_wrong_secret_is_invalid_client(tmp_path: Path) -> None:
    async with run_demo(jwt_demo(secret_assertions=True)) as server:
        config = write_config(
            tmp_path,
            server.url,
            auth__auth_method="client_secret_jwt",
            auth__client_secret="not-the-secret-at-all",
        )
        result = await run_cli(str(config))
    assert result.code == 1
    assert_one_clear_line(result, "invalid_client", "auth.client_secret")
    assert_nothing_secret(result, "not-the-secret-at-all")


async def test_a_key_the_server_does_not_know_is_invalid_client(tmp_path: Path) -> None:
    known, other = new_key("RS256"), new_key("RS256")
    key_file = tmp_path / "client.pem"
    key_file.write_text(pem(other))
    async with run_demo(jwt_demo(assertion_jwks=jwks(("k1", known)))) as server:
        result = await run_cli(str(key_config(tmp_path, server.url, private_key=str(key_file))))
    assert result.code == 1
    assert_one_clear_line(result, "invalid_client", "auth.private_key", "does not verify")
    assert_nothing_secret(result, pem(other))


@pytest.mark.parametrize(
    ("offset", "works"),
    [(3.0, True), (-3.0, True), (120.0, False), (-120.0, False)],
    ids=["ahead-3s", "behind-3s", "ahead-2min", "behind-2min"],
)
async def test_clock_skew_within_the_leeway_works_and_beyond_it_is_refused(
    tmp_path: Path, offset: float, works: bool
) -> None:
    """The server's clock `offset` seconds off ours: a few seconds pass, minutes do not (the
    assertion lives 60 s; one from two minutes ahead is issued in the future)."""
    key = new_key("ES256")
    key_file = tmp_path / "client.pem"
    key_file.write_text(pem(key))
    settings = jwt_demo(assertion_jwks=jwks(("k1", key)), assertion_clock_offset=offset)
    async with run_demo(settings) as server:
        config = key_config(tmp_path, server.url, private_key=str(key_file), signing_alg="ES256")
        result = await run_cli(str(config))
    if works:
        assert_harvested(result, tmp_path)
    else:
        assert result.code == 1
        why = "expired" if offset > 0 else "in the future"
        assert_one_clear_line(result, "invalid_client", why)
    assert_nothing_secret(result, pem(key))


async def test_a_retried_token_request_sends_a_fresh_assertion(tmp_path: Path) -> None:
    """The demo spends the first assertion's jti and answers 503: a retry with the same
    assertion would be refused as a replay, so the run succeeding shows a fresh one."""
    key = new_key("EdDSA")
    key_file = tmp_path / "client.pem"
    key_file.write_text(pem(key))
    settings = jwt_demo(assertion_jwks=jwks(("k1", key)), token_failures=1)
    async with run_demo(settings) as server:
        config = key_config(tmp_path, server.url, private_key=str(key_file), signing_alg="EdDSA")
        result = await run_cli(str(config))
        assert server.stats.token_requests == 2
        assert server.spent_assertions == 2
    assert_harvested(result, tmp_path)
    assert_nothing_secret(result, pem(key))


async def test_the_demo_refuses_a_replayed_assertion(tmp_path: Path) -> None:
    key = new_key("RS256")
    key_file = tmp_path / "client.pem"
    key_file.write_text(pem(key))
    async with run_demo(jwt_demo(assertion_jwks=jwks(("k1", key)))) as server:
        token_url = f"{server.url}/oauth2/token"
        auth = AuthConfig(token_url=token_url, client_id="demo", private_key=Secret(str(key_file)))
        assertion = make_assertion(signing_key(auth), client_id="demo", audience=token_url)
        form = {
            "grant_type": "client_credentials",
            "client_id": "demo",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
        answers = []
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.post(token_url, data=form) as response:
                    answers.append((response.status, await response.json()))
    assert answers[0][0] == 200
    assert answers[1][0] == 401
    assert answers[1][1]["error"] == "invalid_client"
    assert "used before" in answers[1][1]["error_description"]


async def test_the_audience_can_be_set_for_providers_that_want_the_issuer(tmp_path: Path) -> None:
    key = new_key("RS256")
    key_file = tmp_path / "client.pem"
    key_file.write_text(pem(key))
    issuer = "https://login.example.com/tenant"
    settings = jwt_demo(assertion_jwks=jwks(("k1", key)), assertion_audience=issuer)
    async with run_demo(settings) as server:
        wrong = await run_cli(str(key_config(tmp_path, server.url, private_key=str(key_file))))
        config = key_config(
            tmp_path, server.url, private_key=str(key_file), assertion_audience=issuer
        )
        result = await run_cli(str(config))
    assert_one_clear_line(wrong, "invalid_client", "Audience")
    assert_harvested(result, tmp_path)


def test_the_demo_command_takes_the_switches(tmp_path: Path) -> None:
    """`python -m harvester.demo` as `make run` starts it: client_secret_jwt, a nested token
    sent alone in X-Auth-Token."""
    options = ["--port", "0", "--records", "100", "--secret-assertions"]
    options += ["--token-field", "data.access_token", "--token-header", "X-Auth-Token"]
    with demo_process([*options, "--token-scheme", ""]) as url:
        config = write_config(
            tmp_path,
            url,
            auth__auth_method="client_secret_jwt",
            auth__client_secret="demo-secret",
            auth__token_field="data.access_token",
            auth__header="X-Auth-Token",
            auth__scheme="",
        )
        result = subprocess.run(
            [sys.executable, "-m", "harvester", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "items.jsonl").read_bytes() == expected_bytes(100)
