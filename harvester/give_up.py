"""Why a page failed for good, said in one line that names the setting or limit behind it."""

from __future__ import annotations

from typing import NoReturn

import aiohttp
from yarl import URL

from harvester.config import SourceConfig
from harvester.errors import PageFetchError
from harvester.pagination import PageRequest
from harvester.proxies import proxy_failure
from harvester.retry import (
    RetryPolicy,
    answered_status,
    certificate_failure,
    failure_detail,
    retry_cause,
)


def give_up(
    request: PageRequest, url: URL, exc: BaseException, policy: RetryPolicy, source: SourceConfig
) -> NoReturn:
    """Raise the PageFetchError (or certificate error) that says why the page failed for good."""
    unverified = certificate_failure(exc, str(url))
    if unverified is not None:
        raise unverified from exc
    attempts = policy.config.max_attempts
    unreachable = proxy_failure(exc, attempts)
    if unreachable is not None:
        raise unreachable from None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None and retry_after > policy.config.max_retry_after:
        reason = (
            f"server asked to retry after {retry_after:.0f} s, "
            f"more than retry.max_retry_after ({policy.config.max_retry_after:.0f} s); "
            "retry.on_long_quota: wait holds every worker until then"
        )
    elif isinstance(exc, TimeoutError):
        reason = f"gave up after {attempts} attempts: {_timed_out(exc, source)}"
    elif isinstance(exc, aiohttp.ClientResponseError):
        # raise_for_status is off: this is an answer aiohttp could not parse, not a status.
        reason = f"the answer could not be read as HTTP ({exc.message})"
        if "more than" in exc.message or "headers" in exc.message.lower():
            reason += "; aiohttp allows status and header lines of 8190 bytes, 128 headers"
    elif policy.is_retryable(exc):
        detail = failure_detail(exc)
        reason = f"gave up after {attempts} attempts: {retry_cause(exc)} ({detail})"
    else:
        reason = f"failed: {type(exc).__name__} ({failure_detail(exc)})"
    raise PageFetchError(
        reason,
        page=request.index,
        url=str(url),
        status=answered_status(exc),
        body=getattr(exc, "body", ""),
        attempts=attempts,
    ) from exc


def _timed_out(exc: TimeoutError, source: SourceConfig) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"no connection within source.connect_timeout ({source.connect_timeout:g} s)"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return f"nothing received for source.read_timeout ({source.read_timeout:g} s)"
    return f"the answer took longer than source.timeout ({source.timeout:g} s)"
