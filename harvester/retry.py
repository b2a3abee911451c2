"""What is retryable and how long to wait before the next attempt, built on tenacity.

The wait is exponential with jitter, capped at `retry.max_backoff`; a server's Retry-After is the
floor of the wait, never shortened by jitter (and may exceed max_backoff: the server knows best).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import aiohttp
import orjson
import tenacity
from tenacity.wait import wait_base

from harvester.config import RetryConfig
from harvester.errors import CertificateError, excerpt

# The statuses that mean "fewer requests": a 429, and a 503 (nginx's limit_req refuses with it;
# an overloaded server wants fewer requests too). The throttle holds every worker on them
# (ratelimit.py); tune counts them as refusals alike.
REFUSALS = frozenset({429, 503})

# The statuses aiohttp would follow (with allow_redirects); we follow them ourselves or not at all.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class RetryableStatus(Exception):
    """The server answered with a status listed in retry.statuses."""

    def __init__(self, status: int, *, retry_after: float | None, body: str) -> None:
        super().__init__(f"status {status}")
        self.status = status
        self.retry_after = retry_after
        self.body = body


def refused(status: int, headers: Mapping[str, str], body: bytes) -> RetryableStatus:
    """The RetryableStatus for an answer with a retryable status, its Retry-After read."""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    return RetryableStatus(status, retry_after=retry_after, body=excerpt(body))


class InvalidBody(Exception):
    """The body is not the JSON it should be (cut short in transit, most often)."""

    def __init__(self, reason: str, *, body: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.body = body
        self.status = status


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    try:
        # RFC 9110 says whole seconds; a few servers send fractions, which are just as clear.
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT; a naive result means the zone was left out.
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def in_whole_seconds(value: str) -> bool:
    """Whether a Retry-After that parse_retry_after read says its wait in whole seconds
    (delta-seconds, an HTTP-date): rounded, most often up, by up to a second."""
    return "." not in value


def retry_cause(exc: BaseException) -> str | None:
    """The stats name of a retryable failure, or None when `exc` must not be retried."""
    if isinstance(exc, RetryableStatus):
        return str(exc.status) if exc.status < 500 else "5xx"
    if isinstance(exc, InvalidBody | orjson.JSONDecodeError | aiohttp.ClientPayloadError):
        return "invalid_body"
    # aiohttp's timeouts subclass both ClientError and TimeoutError: test for time-outs first.
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    # A certificate that failed verification fails the same way on every attempt.
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return None
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "connection"
    return None


def answered_status(exc: BaseException) -> int | None:
    """The status the server sent, if it sent one before `exc`."""
    # aiohttp raises ClientResponseError with its parser's code (400) when it cannot read the
    # head of an answer (a header too long, say): the server may well have sent 200. With
    # raise_for_status off, that is the only way it comes here.
    if isinstance(exc, aiohttp.ClientResponseError):
        return None
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def failure_detail(exc: BaseException) -> str:
    """What went wrong, without aiohttp's own rendering (its code and the full URL)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"the answer could not be read: {exc.message}"
    return str(exc)


def certificate_failure(exc: BaseException, url: str) -> CertificateError | None:
    """The CertificateError that `exc` stands for, if it is a certificate that failed to verify."""
    if not isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return None
    cause = exc.certificate_error
    # verify_message is OpenSSL's own phrase: "self-signed certificate", "certificate has expired"
    reason = getattr(cause, "verify_message", None) or str(cause)
    return CertificateError(url=url, reason=reason)


class RetryPolicy:
    """The numbers from `retry:` turned into decisions: retry this? wait how long?"""

    def __init__(
        self,
        config: RetryConfig,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self._sleep = sleep

    def is_retryable(self, exc: BaseException) -> bool:
        if retry_cause(exc) is None:
            return False
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is None or retry_after <= self.config.max_retry_after:
            return True
        return self.config.on_long_quota == "wait"  # a long quota: held until its reset

    def wait_for(
        self, attempt: int, retry_after: float | None = None, *, held: bool = False
    ) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        `held`: the attempt was refused (429, 503) where a throttle's cool-down holds every
        worker for it (ratelimit.py): its Retry-After, never shortened, or, untold, harvester's
        own pause, doubled while nothing gets through. The first such refusal waits for that
        alone; later attempts wait as any other (the schedule is the same, its first step
        skipped), and so does one told "Retry-After: 0", which no cool-down holds.
        """
        # A backoff of its own on top of the cool-down held the oldest page back while the
        # others went on, until the reorder window was full and every worker stood still:
        # against a sliding log at 50/s, 0.2-0.9 s after most refusals, 70-84% of the limit,
        # the client's shortfall then passing for the API's rate.
        if held and attempt == 1 and retry_after != 0:
            return retry_after or 0.0
        # The exponent is capped so that a late attempt cannot overflow a float.
        growth = 2.0 ** min(attempt - 1, 64)
        ceiling = min(self.config.max_backoff, self.config.initial_backoff * growth)
        # Jitter in the upper half: spreads the workers out yet keeps the backoff growing.
        backoff = self._rng.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0
        return max(backoff, retry_after or 0.0)

    def retrying(
        self,
        on_retry: Callable[[BaseException, float], None] | None = None,
        *,
        held: bool = False,
    ) -> tenacity.AsyncRetrying:
        """A tenacity loop for one request; `on_retry(exc, wait)` runs before each wait.
        `held`: its refusals are held by a throttle's cool-down (see wait_for)."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None and state.next_action:
                exc = state.outcome.exception()
                if exc is not None:
                    on_retry(exc, state.next_action.sleep)

        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.config.max_attempts),
            wait=_PolicyWait(self, held),
            retry=tenacity.retry_if_exception(self.is_retryable),
            reraise=True,
            sleep=self._sleep,
            before_sleep=before_sleep,
        )


class _PolicyWait(wait_base):
    def __init__(self, policy: RetryPolicy, held: bool) -> None:
        self._policy = policy
        self._held = held

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        held = self._held and getattr(exc, "status", None) in REFUSALS
        return self._policy.wait_for(retry_state.attempt_number, retry_after, held=held)
