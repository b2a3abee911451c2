"""One exception root; subclasses carry their context as keyword-only fields.

Every message is one line that names what went wrong and where (key path, URL, status), so the
CLI can print it as is. URLs are passed through `redact_url` first: no secret in any message.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters whose values never appear in a message: API keys travel this way more often
# than anyone likes.
_SECRET_PARAM = re.compile(
    r"(?:^|[_.-])(?:token|secret|key|apikey|password|passwd|pwd|signature|sig|auth|"
    r"authorization|credentials?|code|assertion)$|(?:token|secret|apikey|password)",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """The URL with user info and secret-looking query values replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if looks_secret(k) else v) for k, v in pairs], safe="*")
    fragment = "***" if "=" in parts.fragment else parts.fragment  # implicit-grant style tokens
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def looks_secret(name: str) -> bool:
    """Whether a query parameter or header of this name carries a secret."""
    # Whole words at the end (api_key, X-Auth) or unmistakable stems anywhere (accessToken);
    # `keyword` and `author` are left alone.
    return _SECRET_PARAM.search(name) is not None


def carries_secret(name: str) -> bool:
    """Whether a header or parameter of this name carries a secret: `looks_secret`, or a cookie."""
    return looks_secret(name) or name.lower() in ("cookie", "proxy-authorization")


def excerpt(body: bytes | str, limit: int = 200) -> str:
    """A short, single-line excerpt of a response body for an error message."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    # One line, and nothing a terminal would act on: control characters become U+FFFD.
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


class HarvesterError(Exception):
    """Root of every error harvester raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(HarvesterError):
    """The configuration (or a command-line option) is wrong; `key` is the dotted key path."""

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        if key is not None and not key.isprintable():  # a control character would break the line
            key = repr(key)[1:-1]
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.key = key
        self.source = source
        self.detail = message


class AuthError(HarvesterError):
    """The token endpoint refused us, or the API refused a fresh token."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        parts = [message, f"url={redact_url(url)}"]
        if status is not None:
            parts.append(f"status={status}")
        if error:
            parts.append(f"error={error}")
        if error_description:
            parts.append(f"error_description={excerpt(error_description)!r}")
        super().__init__(" ".join(parts[:1]) + " (" + ", ".join(parts[1:]) + ")")
        self.url = redact_url(url)
        self.status = status
        self.error = error
        self.error_description = error_description


class CertificateError(HarvesterError):
    """The server's TLS certificate could not be verified against the trusted CAs."""

    def __init__(self, *, url: str, reason: str) -> None:
        super().__init__(
            f"the TLS certificate of {redact_url(url)} could not be verified ({reason}); "
            "if the server's certificate comes from a private CA, set tls.ca_bundle to the "
            "CA's PEM file"
        )
        self.url = redact_url(url)
        self.reason = reason


class PageFetchError(HarvesterError):
    """A page could not be fetched: a status that is not retryable, or retries ran out."""

    def __init__(
        self,
        message: str,
        *,
        page: int,
        url: str,
        status: int | None = None,
        body: str = "",
        attempts: int = 1,
    ) -> None:
        status_part = f" status {status}" if status is not None else ""
        body_part = f": {body}" if body else ""
        super().__init__(f"page {page}{status_part} at {redact_url(url)}: {message}{body_part}")
        self.page = page
        self.url = redact_url(url)
        self.status = status
        self.body = body
        self.attempts = attempts


class RecordsError(HarvesterError):
    """The body does not hold what the config says it holds (records path, total)."""

    def __init__(self, message: str, *, page: int, url: str, path: str | None = None) -> None:
        super().__init__(f"page {page} at {redact_url(url)}: {message}")
        self.page = page
        self.url = redact_url(url)
        self.path = path


class TotalChangedError(RecordsError):
    """A page tells another total than the first page did: the dataset changed during the run.

    With offsets (or page numbers) into a changing dataset, records shift between pages: some
    would be written twice, others never. Nothing the run writes could be trusted, so it stops.
    """

    def __init__(
        self,
        *,
        page: int,
        url: str,
        total_at_start: int,
        total_now: int,
        part: str,
        unit: str = "records",
    ) -> None:
        super().__init__(
            f"the total changed during the run ({total_at_start} {unit} at the start, "
            f"{total_now} now): records may have moved between pages, so no output is written "
            f"(the partial data is kept in {part}); once the data holds still, run again with "
            "--fresh",
            page=page,
            url=url,
        )
        self.total_at_start = total_at_start
        self.total_now = total_now
        self.part = part


class OutputError(HarvesterError):
    """The output file cannot be written."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"output {path}: {message}")
        self.path = path


class OutputLocked(OutputError):
    """Another run holds the output's lock: it is writing the same output now."""

    def __init__(self, *, path: str, pid: int | None, host: str | None) -> None:
        holder = f"pid {pid} on {host}" if pid is not None else "a run that did not say who"
        super().__init__(
            f"another harvester run ({holder}) is writing this output; wait for it to end, or "
            "choose another output path",
            path=path,
        )
        self.pid, self.host = pid, host


class ResumeError(HarvesterError):
    """The checkpoint cannot be resumed from: another dataset, or files changed since."""

    exit_code = 2

    def __init__(self, message: str, *, path: str, differences: tuple[str, ...] = ()) -> None:
        super().__init__(f"checkpoint {path}: {message}; run with --fresh to start over")
        self.path = path
        self.differences = differences


class TuneAborted(HarvesterError):
    """`harvester tune` stopped rather than press on: most requests of a step failed, or none
    was admitted. `url` and `status` are the last failure's, where it had them."""

    def __init__(
        self,
        message: str,
        *,
        concurrency: int,
        failed: int,
        answered: int,
        url: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"tune stopped: {message}")
        self.concurrency = concurrency
        self.failed = failed
        self.answered = answered
        self.url = redact_url(url) if url is not None else None
        self.status = status


class Interrupted(HarvesterError):
    """SIGINT or SIGTERM stopped the run; what was written in order is checkpointed."""

    exit_code = 130

    def __init__(self, message: str, *, signal: str) -> None:
        super().__init__(message)
        self.signal = signal


class ShardError(HarvesterError):
    """A shard's manifest is missing or disagrees with the others (harvester merge)."""

    exit_code = 2

    def __init__(self, message: str, *, shard: str, path: str) -> None:
        super().__init__(f"shard {shard} ({path}): {message}")
        self.shard, self.path = shard, path
