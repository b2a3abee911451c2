"""The requests `harvester init` sends: one session and token, a hard budget, polite spacing,
each request shown as it goes, and a 429 or 503 waited out as long as the server asks.

Every request counts against the budget, token requests included, because the server counts
them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from harvester.body import BodyRefused, read_body
from harvester.config import Config, RetryConfig
from harvester.errors import AuthError, HarvesterError, redact_url
from harvester.fetch import make_throttle, make_tokens, open_session
from harvester.proxies import Proxies, proxy_errors
from harvester.rate_headers import parse_rate_limit
from harvester.read import NotJSON, decode_json
from harvester.retry import RetryPolicy, parse_retry_after
from harvester.secrets import Secrets
from harvester.stats import Stats

THROTTLED = (429, 503)
_MAX_REDIRECTS = 3


class InitFailed(HarvesterError):
    """init could not decide or verify what a config needs; nothing was written."""


@dataclass(frozen=True)
class Answer:
    """One answer: status, headers, the body decoded (None when it is not JSON)."""

    url: URL
    status: int
    headers: Mapping[str, str]
    body: Any
    size: int
    seconds: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.body is not None

    @property
    def text(self) -> str:
        """What the body said, in short, for a message (a JSON error's detail, if any)."""
        if isinstance(self.body, dict):
            for name in ("detail", "error_description", "error", "message", "title"):
                if name in self.body:
                    return str(self.body[name])[:200]
        return ""


@dataclass
class Budget:
    """Requests left, and the spacing between them."""

    limit: int
    pace: float
    sent: int = 0
    last: float = field(default=float("-inf"))
    hold_until: float = field(default=float("-inf"))  # the API said its budget is spent


class Prober:
    """Sends init's GETs, with the token the run will use; `say` shows each."""

    def __init__(
        self,
        config: Config,
        *,
        budget: Budget,
        say: Callable[[str], None],
        secrets: Secrets,
        max_wait: float = 120.0,
    ) -> None:
        self._config = config
        self._budget = budget
        self._say = say
        self._secrets = secrets
        self._max_wait = max_wait
        self._stats = Stats()
        self._base = URL(config.source.url)
        self.rate_headers: dict[str, str] = {}

    async def __aenter__(self) -> Prober:
        self._session = open_session(self._config)
        self._proxies = Proxies(self._config.source.proxy, key="source.proxy")
        policy = RetryPolicy(RetryConfig(max_attempts=1))
        throttle = make_throttle(self._config, self._stats)
        self._tokens = make_tokens(
            self._config,
            self._session,
            policy,
            self._stats,
            secrets=self._secrets,
            throttle=throttle,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()

    @property
    def used(self) -> int:
        """Requests sent so far, token requests included."""
        return self._budget.sent + self._stats.token_requests

    @property
    def left(self) -> int:
        return self._budget.limit - self.used

    async def get(
        self, url: URL, *, headers: Mapping[str, str] | None = None, why: str = ""
    ) -> Answer:
        """GET `url` with the source's headers and the token; a 429 or 503 is waited out."""
        waited = 0.0
        refreshed = False
        redirects = 0
        while True:
            await self._space()
            token = await self._current_token()
            answer = await self._send(url, headers or {}, token, why)
            if answer.status == 401 and token is not None and not refreshed:
                refreshed = True
                await self._tokens.after_unauthorized(token, url=str(url))
                continue
            if answer.status in THROTTLED:
                wait = self._wait_for(answer, waited)
                waited += wait
                self._say(f"      the API asks to slow down: waiting {wait:.1f} s")
                await asyncio.sleep(wait)
                continue
            location = answer.headers.get("Location")
            if answer.status in (301, 302, 303, 307, 308) and location:
                url = self._redirected(url, location, redirects)
                redirects += 1
                continue
            return answer

    async def _current_token(self) -> Any:
        before = self._stats.token_requests
        if self._config.auth.type == "client_credentials" and self.left < 1:
            raise self._out_of_requests()
        try:
            return await self._tokens.current()
        finally:
            if self._stats.token_requests > before:
                self._say(f"  {self.used:>2}. POST {redact_url(str(self._config.auth.token_url))}")

    async def _send(self, url: URL, headers: Mapping[str, str], token: Any, why: str) -> Answer:
        if self.left < 1:
            raise self._out_of_requests()
        self._budget.sent += 1
        sent = {"Accept": "application/json", **self._config.source.headers, **headers}
        if token is not None:
            sent.update(token.header())
        started = time.monotonic()
        self._budget.last = started
        try:
            proxy, args = self._proxies.route(url, sent)
            async with (
                proxy_errors(proxy),
                self._session.get(url, allow_redirects=False, **args) as response,
            ):
                try:
                    raw = await read_body(
                        response,
                        max_bytes=self._config.source.max_body_bytes,
                        max_ratio=self._config.source.max_compression_ratio,
                    )
                except BodyRefused as exc:
                    raise InitFailed(f"{redact_url(str(url))}: {exc}") from None
                headers_seen = response.headers.copy()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise InitFailed(
                f"{redact_url(str(url))}: no answer ({type(exc).__name__}: {exc}); is the URL "
                "right and the API up?"
            ) from None
        seconds = time.monotonic() - started
        body = None
        with contextlib.suppress(NotJSON):
            body = decode_json(raw, headers_seen.get("Content-Type", ""))
        for name, value in headers_seen.items():
            if "ratelimit" in name.lower().replace("-", ""):  # not a 429's Retry-After
                self.rate_headers[name] = value
        told = parse_rate_limit(headers_seen)
        if told is not None and told.remaining == 0 and told.reset is not None:
            self._budget.hold_until = time.monotonic() + min(told.reset, self._max_wait)
        shown = self._shown(url, headers)
        kind = "JSON" if body is not None else "not JSON"
        self._say(
            f"  {self.used:>2}. GET {shown} -> {status}, {len(raw):,} bytes {kind}, "
            f"{seconds * 1000:.0f} ms{f' ({why})' if why else ''}"
        )
        return Answer(url, status, headers_seen, body, len(raw), seconds)

    def _shown(self, url: URL, headers: Mapping[str, str]) -> str:
        text = redact_url(str(url))
        if url.origin() == self._base.origin():
            text = text[len(str(self._base.origin())) :]
        extra = "".join(f" [{name}: {value}]" for name, value in headers.items())
        return self._secrets.mask(text + extra)

    async def _space(self) -> None:
        """Keep `pace` seconds between requests, and wait for a budget the API says is spent."""
        now = time.monotonic()
        gap = max(self._budget.last + self._budget.pace, self._budget.hold_until) - now
        if gap > 0:
            if self._budget.hold_until > now:
                self._say(f"      the API's rate-limit budget is spent: waiting {gap:.1f} s")
            await asyncio.sleep(gap)

    def _wait_for(self, answer: Answer, waited: float) -> float:
        """How long the server asks us to wait: Retry-After, else its rate-limit reset, else
        a second, doubling."""
        wait = parse_retry_after(answer.headers.get("Retry-After"))
        if wait is None:
            info = parse_rate_limit(answer.headers)
            wait = info.reset if info is not None and info.reset is not None else None
        if wait is None:
            wait = max(1.0, waited)
        if waited + wait > self._max_wait:
            raise InitFailed(
                f"{redact_url(str(answer.url))}: the API answered {answer.status} and asks to "
                f"wait {wait:.0f} s more: try init again later"
            )
        return wait

    def _redirected(self, url: URL, location: str, redirects: int) -> URL:
        target = url.join(URL(location))
        if redirects >= _MAX_REDIRECTS or target.origin() != url.origin():
            raise InitFailed(
                f"{redact_url(str(url))} redirects to {redact_url(str(target))}: give init that "
                "URL instead"
            )
        return target

    def _out_of_requests(self) -> InitFailed:
        return InitFailed(
            f"init used its {self._budget.limit} requests (--max-requests) before it could "
            "decide; nothing was written"
        )


def refused(answer: Answer, what: str) -> HarvesterError:
    """The error for an answer that is not a page of JSON, naming what to fix."""
    where = redact_url(str(answer.url))
    detail = f": {answer.text}" if answer.text else ""
    if answer.status in (401, 403):
        return AuthError(
            f"{what} was refused ({answer.status}{detail}): give the token endpoint and client "
            "(--token-url or --issuer, --client-id, --client-secret-env), or the header the API "
            "wants (--header)",
            url=where,
            status=answer.status,
        )
    if answer.body is None and 200 <= answer.status < 300:
        return InitFailed(f"{where}: {what} is not JSON ({answer.size} bytes)")
    return InitFailed(f"{where}: {what} answered {answer.status}{detail}")
