"""The token manager: single flight, proactive refresh, the 401 generation rule, failures."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from harvester.auth import TokenManager
from harvester.config import AuthConfig, Secret
from harvester.errors import AuthError
from harvester.secrets import Secrets
from harvester.stats import Stats

from .conftest import no_wait_policy

TOKEN_URL = "http://auth.test/oauth2/token"
SECRET = "s3cr:t&+/ x"


def auth_config(**changes: Any) -> AuthConfig:
    values: dict[str, Any] = {
        "type": "client_credentials",
        "token_url": TOKEN_URL,
        "client_id": "my app",
        "client_secret": Secret(SECRET),
        "scope": "read",
        "refresh_margin": 30.0,
    }
    return AuthConfig(**{**values, **changes})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token_requests(mocked: aioresponses) -> list[Any]:
    return mocked.requests.get(("POST", URL(TOKEN_URL)), [])


def issue_tokens(mocked: aioresponses, *, expires_in: Any = 3600, times: int = 10) -> None:
    for n in range(1, times + 1):
        payload: dict[str, Any] = {"access_token": f"tok-{n}", "token_type": "Bearer"}
        if expires_in is not None:
            payload["expires_in"] = expires_in
        mocked.post(TOKEN_URL, payload=payload)


async def manager(
    session: aiohttp.ClientSession, config: AuthConfig | None = None, **kwargs: Any
) -> TokenManager:
    return TokenManager(config or auth_config(), session, no_wait_policy(), Stats(), **kwargs)


async def test_fifty_concurrent_callers_share_one_token_request(mock_http: aioresponses) -> None:
    started, gate = asyncio.Event(), asyncio.Event()

    async def slow_token(url: URL, **kwargs: Any) -> CallbackResult:
        started.set()
        await gate.wait()
        return CallbackResult(payload={"access_token": "tok-1", "expires_in": 3600})

    mock_http.post(TOKEN_URL, callback=slow_token, repeat=True)
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session)
        callers = [asyncio.create_task(tokens.current()) for _ in range(50)]
        await started.wait()  # the one token request is out
        for _ in range(10):
            await asyncio.sleep(0)  # every caller has had its chance to ask as well
        gate.set()
        results = await asyncio.gather(*callers)
    assert len(token_requests(mock_http)) == 1
    assert {t.value for t in results if t} == {"tok-1"}


async def test_client_secret_basic_form_encodes_id_and_secret(mock_http: aioresponses) -> None:
    issue_tokens(mock_http)
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session, auth_config(extra_params={"audience": "api"}))
        await tokens.current()
    call = token_requests(mock_http)[0]
    header = call.kwargs["headers"]["Authorization"]
    decoded = base64.b64decode(header.removeprefix("Basic ")).decode()
    # RFC 6749 2.3.1, a space as %20: form decoders and plain percent-decoders (authlib) alike.
    assert decoded == "my%20app:s3cr%3At%26%2B%2F%20x"
    assert call.kwargs["headers"]["Accept"] == "application/json"
    assert call.kwargs["data"] == {
        "grant_type": "client_credentials",
        "scope": "read",
        "audience": "api",
    }


async def test_client_secret_post_sends_credentials_in_the_body(mock_http: aioresponses) -> None:
    issue_tokens(mock_http)
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session, auth_config(auth_method="client_secret_post", scope=None))
        await tokens.current()
    call = token_requests(mock_http)[0]
    assert "Authorization" not in call.kwargs["headers"]
    assert call.kwargs["data"] == {
        "grant_type": "client_credentials",
        "client_id": "my app",
        "client_secret": SECRET,
    }


async def test_refreshes_proactively_before_expiry(mock_http: aioresponses) -> None:
    issue_tokens(mock_http, expires_in=100)
    clock = FakeClock()
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session, clock=clock)
        first = await tokens.current()
        clock.now += 69  # 100 s lifetime - 30 s margin = refresh after 70 s
        assert await tokens.current() == first
        clock.now += 2
        second = await tokens.current()
    assert first and second and (first.value, second.value) == ("tok-1", "tok-2")
    assert second.generation == first.generation + 1


async def test_short_lived_tokens_are_not_refreshed_on_every_call(mock_http: aioresponses) -> None:
    issue_tokens(mock_http, expires_in=2)  # shorter than the 30 s margin
    clock = FakeClock()
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session, clock=clock)
        for _ in range(10):
            await tokens.current()
        clock.now += 1.7
        await tokens.current()
        assert len(token_requests(mock_http)) == 1
        clock.now += 0.2  # past 2 s - a tenth of it
        await tokens.current()
    assert len(token_requests(mock_http)) == 2


@pytest.mark.parametrize("expires_in", ["3600", 3600.0])
async def test_expires_in_as_number_or_numeric_string(
    mock_http: aioresponses, expires_in: Any
) -> None:
    issue_tokens(mock_http, expires_in=expires_in)
    clock = FakeClock()
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session, clock=clock)
        await tokens.current()
        clock.now += 3000
        await tokens.current()
        clock.now += 600
        await tokens.current()
    assert len(token_requests(mock_http)) == 2


async def test_without_expires_in_the_token_lasts_until_a_401(mock_http: aioresponses) -> None:
    issue_tokens(mock_http, expires_in=None)
    clock = FakeClock()
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session, clock=clock)
        first = await tokens.current()
        clock.now += 10**7
        assert await tokens.current() == first
        second = await tokens.after_unauthorized(first, url="http://api.test/items")
    assert second.value == "tok-2"


async def test_a_burst_of_401s_from_one_token_refreshes_once(mock_http: aioresponses) -> None:
    issue_tokens(mock_http)
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session)
        expired = await tokens.current()
        assert expired is not None
        fresh = await asyncio.gather(
            *(tokens.after_unauthorized(expired, url="http://api.test/x") for _ in range(20))
        )
        # A late 401 for the old token finds the new one and does not refresh again.
        late = await tokens.after_unauthorized(expired, url="http://api.test/x")
    assert {t.value for t in fresh} == {"tok-2"} and late.value == "tok-2"
    assert len(token_requests(mock_http)) == 2


@pytest.mark.parametrize(
    ("status", "error"), [(401, "invalid_client"), (400, "invalid_scope"), (403, "access_denied")]
)
async def test_refusals_fail_fast_with_error_and_description(
    mock_http: aioresponses, status: int, error: str
) -> None:
    mock_http.post(
        TOKEN_URL,
        status=status,
        payload={"error": error, "error_description": "no such thing"},
        repeat=True,
    )
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session)
        with pytest.raises(AuthError) as caught:
            await tokens.current()
    assert (caught.value.status, caught.value.error) == (status, error)
    assert caught.value.error_description == "no such thing"
    assert error in str(caught.value) and SECRET not in str(caught.value)
    assert len(token_requests(mock_http)) == 1  # bad credentials are never retried


async def test_server_errors_and_dropped_connections_are_retried(mock_http: aioresponses) -> None:
    mock_http.post(TOKEN_URL, status=503)
    mock_http.post(TOKEN_URL, exception=aiohttp.ServerDisconnectedError())
    issue_tokens(mock_http, times=1)
    stats = Stats()
    async with aiohttp.ClientSession() as session:
        tokens = TokenManager(auth_config(), session, no_wait_policy(), stats)
        token = await tokens.current()
    assert token is not None and token.value == "tok-1"
    assert stats.token_requests == 3
    assert stats.retries == {"token_5xx": 1, "token_connection": 1}


async def test_an_unreachable_token_endpoint_fails_after_max_attempts(
    mock_http: aioresponses,
) -> None:
    mock_http.post(TOKEN_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
    async with aiohttp.ClientSession() as session:
        tokens = TokenManager(auth_config(), session, no_wait_policy(max_attempts=3), Stats())
        with pytest.raises(AuthError, match=r"after 3 attempt\(s\)"):
            await tokens.current()
    assert len(token_requests(mock_http)) == 3


async def test_a_token_answer_without_access_token_is_an_auth_error(
    mock_http: aioresponses,
) -> None:
    mock_http.post(TOKEN_URL, payload={"token_type": "Bearer"})
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session)
        with pytest.raises(AuthError, match="no access_token"):
            await tokens.current()


async def test_bearer_token_is_static_and_a_401_is_final() -> None:
    config = AuthConfig(type="bearer", token=Secret("static-token"))
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session, config)
        token = await tokens.current()
        assert token is not None and token.header() == {"Authorization": "Bearer static-token"}
        with pytest.raises(AuthError, match="bearer token"):
            await tokens.after_unauthorized(token, url="http://api.test/x")


async def test_auth_none_sends_no_token() -> None:
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session, AuthConfig(type="none"))
        assert await tokens.current() is None


async def test_tokens_never_show_in_reprs(mock_http: aioresponses) -> None:
    issue_tokens(mock_http)
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session)
        token = await tokens.current()
    assert "tok-1" not in repr(token)
    assert SECRET not in repr(auth_config())


async def test_a_token_error_echoing_the_secret_or_credential_is_scrubbed(
    mock_http: aioresponses,
) -> None:
    credential = base64.b64encode(b"my%20app:s3cr%3At%26%2B%2F%20x").decode()  # as sent
    echo = f"wrong secret {SECRET} (Basic {credential})"
    mock_http.post(
        TOKEN_URL, status=401, payload={"error": "invalid_client", "error_description": echo}
    )
    heard: list[str] = []
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session, secrets=Secrets(on_add=heard.append))
        with pytest.raises(AuthError) as caught:
            await tokens.current()
    assert caught.value.error_description == "wrong secret *** (Basic ***)"
    assert SECRET in heard and credential in heard  # the run's registry masks them everywhere


async def test_every_issued_token_is_heard_of_and_scrubbed(mock_http: aioresponses) -> None:
    issue_tokens(mock_http)
    heard: list[str] = []
    async with aiohttp.ClientSession() as session:
        tokens = await manager(session, secrets=Secrets(on_add=heard.append))
        first = await tokens.current()
        await tokens.after_unauthorized(first, url="https://api.test/x")
    assert {"tok-1", "tok-2"} <= set(heard)
    assert tokens.secrets.tokens == ("tok-1", "tok-2")
    assert tokens.scrub(b'{"old": "tok-1", "new": "tok-2"}') == b'{"old": "***", "new": "***"}'
