"""Token responses as providers write them, and tokens sent where their APIs want them: through
the CLI against the demo API answering in each shape, and table tests of the reading."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from harvester.config import AuthConfig
from harvester.demo import DemoSettings, run_demo
from harvester.errors import AuthError
from harvester.runner import run
from harvester.token_response import read_token_response
from tests.conftest import (
    SECRET,
    expected_bytes,
    make_config,
    no_wait_policy,
    run_cli,
    write_config,
)
from tests.test_secrets import TOKEN, items, recorder, redirect, token_and_data

RECORDS = 200
URL = "https://login.example.com/token"
NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("demo", "auth"),
    [
        ({"token_field": "data.access_token"}, {"token_field": "data.access_token"}),
        ({"expires_in_as_string": True}, {}),
        (
            {"expires_at": "epoch", "omit_expires_in": True},
            {"expires_at_field": "expires_at"},
        ),
        (
            {"token_field": "result.token", "expires_at": "iso", "omit_expires_in": True},
            {"token_field": "result.token", "expires_at_field": "result.expires_at"},
        ),
        ({"token_type": "Token"}, {}),
        ({"token_type": "bearer"}, {}),
        ({"token_type": "access", "token_scheme": "Bearer"}, {"scheme": "Bearer"}),
        (
            {"token_header": "X-Auth-Token", "token_scheme": ""},
            {"header": "X-Auth-Token", "scheme": ""},
        ),
    ],
    ids=[
        "nested-token",
        "expires-in-string",
        "expires-at-epoch",
        "expires-at-iso-nested",
        "token-type-as-scheme",
        "lowercase-bearer",
        "scheme-override",
        "other-header-no-scheme",
    ],
)
async def test_each_token_response_shape_harvests(
    tmp_path: Path, demo: dict[str, Any], auth: dict[str, Any]
) -> None:
    settings = DemoSettings(records=RECORDS, client_secret=SECRET, **demo)
    async with run_demo(settings) as server:
        changes = {f"auth__{key}": value for key, value in auth.items()}
        config = write_config(tmp_path, server.url, **changes)
        result = await run_cli(str(config), "--log-level", "DEBUG")
        issued = server.issued_tokens
        refused = server.stats.faults["401"]
    assert result.code == 0, result.stderr
    assert (tmp_path / "out" / "items.jsonl").read_bytes() == expected_bytes(RECORDS)
    assert refused == 0  # every data request carried the token where the API wants it
    assert SECRET not in result.output
    assert all(token not in result.output for token in issued)


async def test_a_token_at_another_path_than_configured_is_named(tmp_path: Path) -> None:
    settings = DemoSettings(records=RECORDS, client_secret=SECRET, token_field="data.token")
    async with run_demo(settings) as server:
        config = write_config(tmp_path, server.url, auth__token_field="data.access_token")
        result = await run_cli(str(config))
    assert result.code == 1
    assert "token response has no data.access_token (auth.token_field)" in result.stderr


def read(payload: dict[str, Any], **auth: Any) -> tuple[str, float | None, str]:
    config = AuthConfig(token_url=URL, client_id="c", **auth)
    seen: list[str] = []
    answer = read_token_response(payload, config, now=NOW, url=URL, register=seen.append)
    assert seen == [answer.value]
    return answer.value, answer.lifetime, answer.scheme


def iso(seconds: float, offset: str = "+00:00") -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(tzinfo=None)
    return moment.isoformat() + offset


@pytest.mark.parametrize(
    ("payload", "auth", "expected"),
    [
        ({"access_token": "tok-1"}, {}, ("tok-1", None, "Bearer")),
        ({"access_token": "tok-1", "expires_in": 60}, {}, ("tok-1", 60.0, "Bearer")),
        ({"access_token": "tok-1", "expires_in": "60"}, {}, ("tok-1", 60.0, "Bearer")),
        ({"access_token": "tok-1", "expires_in": "59.5"}, {}, ("tok-1", 59.5, "Bearer")),
        (
            {"data": {"access_token": "tok-1", "expires_in": 30, "token_type": "MAC"}},
            {"token_field": "data.access_token"},
            ("tok-1", 30.0, "MAC"),
        ),
        (
            {"access_token": "tok-1", "expires_at": NOW + 90},
            {"expires_at_field": "expires_at"},
            ("tok-1", 90.0, "Bearer"),
        ),
        (
            {"access_token": "tok-1", "expires_at": str(int(NOW + 90))},
            {"expires_at_field": "expires_at"},
            ("tok-1", 90.0, "Bearer"),
        ),
        (
            {"access_token": "tok-1", "meta": {"expiry": iso(NOW + 120)}},
            {"expires_at_field": "meta.expiry"},
            ("tok-1", 120.0, "Bearer"),
        ),
        (
            {"access_token": "tok-1", "expiry": iso(NOW + 120, "Z")},
            {"expires_at_field": "expiry"},
            ("tok-1", 120.0, "Bearer"),
        ),
        (
            {"access_token": "tok-1", "expiry": iso(NOW + 3600 + 120, "+01:00")},
            {"expires_at_field": "expiry"},
            ("tok-1", 120.0, "Bearer"),
        ),
        ({"access_token": "tok-1", "token_type": "BEARER"}, {}, ("tok-1", None, "Bearer")),
        ({"access_token": "tok-1", "token_type": "DPoP"}, {"scheme": ""}, ("tok-1", None, "")),
    ],
)
def test_token_responses_are_read_as_they_come(
    payload: dict[str, Any], auth: dict[str, Any], expected: tuple[str, float | None, str]
) -> None:
    value, lifetime, scheme = read(payload, **auth)
    assert (value, scheme) == (expected[0], expected[2])
    assert lifetime == pytest.approx(expected[1])


@pytest.mark.parametrize(
    ("payload", "auth", "needle"),
    [
        ({"token": "tok-1"}, {}, "has no access_token"),
        ({"data": "tok-1"}, {"token_field": "data.access_token"}, "has no data.access_token"),
        ({"access_token": "tok-1", "expires_in": "soon"}, {}, "expires_in is not a number"),
        ({"access_token": "tok-1", "expires_in": True}, {}, "expires_in is not a number"),
        ({"access_token": "tok-1", "expires_in": "0"}, {}, "must be positive"),
        ({"access_token": "tok-1"}, {"expires_at_field": "exp"}, "has no exp"),
        (
            {"access_token": "tok-1", "exp": "tomorrow"},
            {"expires_at_field": "exp"},
            "neither epoch seconds nor an ISO 8601",
        ),
        (
            {"access_token": "tok-1", "exp": NOW - 5},
            {"expires_at_field": "exp"},
            "expired already",
        ),
        ({"access_token": "tok-1", "token_type": "two words"}, {}, "set auth.scheme"),
    ],
)
def test_a_token_response_that_does_not_do_names_what(
    payload: dict[str, Any], auth: dict[str, Any], needle: str
) -> None:
    with pytest.raises(AuthError) as caught:
        read(payload, **auth)
    assert needle in str(caught.value)
    assert caught.value.status == 200


async def test_a_token_in_a_header_of_any_name_stays_on_its_origin(tmp_path: Path) -> None:
    """auth.header: X-Session (no secret-looking name): a redirect to another origin still
    drops it, as it drops Authorization."""
    async with (
        recorder(items) as (other, seen),
        recorder(token_and_data(redirect(other))) as (api, first_seen),
    ):
        out = tmp_path / "out.jsonl"
        config = make_config(api, out, auth={"header": "X-Session", "scheme": ""})
        await run(config, policy=no_wait_policy())
    assert out.read_bytes() == b'{"id":0}\n{"id":1}\n'
    (hop,) = seen
    assert "X-Session" not in hop.headers
    assert first_seen[-1].headers["X-Session"] == TOKEN
