"""One exception root; one-line messages that carry their fields and never a secret."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from harvester.errors import (
    AuthError,
    CertificateError,
    ConfigError,
    HarvesterError,
    OutputError,
    PageFetchError,
    RecordsError,
    carries_secret,
    excerpt,
    redact_url,
)

SECRET_URL = "https://alice:pa55word@api.example.com:8443/v1/items?offset=200&token=T0K&limit=100"


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


# --- redact_url ------------------------------------------------------------------------------


def test_redact_url_hides_user_info() -> None:
    redacted = redact_url("https://alice:pa55word@api.example.com:8443/v1/items")
    assert redacted == "https://***@api.example.com:8443/v1/items"


def test_redact_url_hides_user_info_with_at_in_password() -> None:
    redacted = redact_url("https://alice:p@ss@api.example.com/items")
    assert redacted == "https://***@api.example.com/items"
    assert "p@ss" not in redacted


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "access_token",
        "api_key",
        "apikey",
        "secret",
        "client_secret",
        "password",
        "signature",
        "X-Amz-Signature",
    ],
)
def test_redact_url_hides_secret_query_values(name: str) -> None:
    redacted = redact_url(f"https://h/items?offset=200&{name}=hunter2&limit=100")
    assert "hunter2" not in redacted
    assert query(redacted) == {"offset": "200", name: "***", "limit": "100"}


def test_redact_url_keeps_everything_else() -> None:
    url = "https://api.example.com/v1/items?offset=200&limit=100&sort=id&q=red"
    assert redact_url(url) == url


def test_redact_url_keeps_parameter_order_and_blank_values() -> None:
    redacted = redact_url("http://h/x?b=2&token=abc&a=1&empty=")
    assert redacted == "http://h/x?b=2&token=***&a=1&empty="


def test_redact_url_without_secrets_is_unchanged() -> None:
    assert redact_url("http://127.0.0.1:8765/items") == "http://127.0.0.1:8765/items"


def test_excerpt_is_one_short_line() -> None:
    assert excerpt(b"  line one\n\tline two  ") == "line one line two"
    long = excerpt("x" * 500, limit=50)
    assert len(long) == 50
    assert long.endswith("…")
    assert excerpt(b"\xff ok") == "\ufffd ok"
    # Nothing a terminal would act on: a NUL, an escape sequence.
    assert excerpt(b"OK\x00 \x1b[2Jgone") == "OK\ufffd \ufffd[2Jgone"


# --- the error classes -----------------------------------------------------------------------


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    assert "\r" not in text
    return text


def test_every_error_is_a_harvester_error() -> None:
    for cls in (
        ConfigError,
        AuthError,
        PageFetchError,
        RecordsError,
        OutputError,
        CertificateError,
    ):
        assert issubclass(cls, HarvesterError)
    assert ConfigError.exit_code == 2
    assert HarvesterError.exit_code == AuthError.exit_code == PageFetchError.exit_code == 1


@pytest.mark.parametrize(
    ("key", "source", "expected"),
    [
        ("pagination.page_size", "config.yaml", "config.yaml: pagination.page_size: must be >= 1"),
        ("pagination.page_size", None, "pagination.page_size: must be >= 1"),
        (None, "config.yaml:3:5", "config.yaml:3:5: must be >= 1"),
        (None, None, "must be >= 1"),
    ],
)
def test_config_error(key: str | None, source: str | None, expected: str) -> None:
    error = ConfigError("must be >= 1", key=key, source=source)
    assert (error.key, error.source, error.detail) == (key, source, "must be >= 1")
    assert one_line(error) == expected
    assert error.exit_code == 2


def test_auth_error_shows_error_and_description() -> None:
    error = AuthError(
        "the token endpoint refused the client",
        url="https://auth.example.com/token?client_secret=s3cr3t-XYZ",
        status=401,
        error="invalid_client",
        error_description="Client authentication failed.\nCheck the id.",
    )
    text = one_line(error)
    assert text.startswith("the token endpoint refused the client (")
    assert "status=401" in text
    assert "error=invalid_client" in text
    assert "Client authentication failed. Check the id." in text
    assert "s3cr3t-XYZ" not in text
    assert (error.status, error.error) == (401, "invalid_client")
    assert error.error_description == "Client authentication failed.\nCheck the id."
    assert error.url == "https://auth.example.com/token?client_secret=***"


def test_auth_error_with_only_a_url() -> None:
    error = AuthError("no access_token", url="http://h/token")
    assert one_line(error) == "no access_token (url=http://h/token)"
    assert (error.status, error.error, error.error_description) == (None, None, None)


def test_page_fetch_error_names_page_status_and_redacted_url() -> None:
    error = PageFetchError(
        "gave up after 8 attempts: 5xx", page=7, url=SECRET_URL, status=503, body="busy", attempts=8
    )
    text = one_line(error)
    assert "page 7" in text
    assert "503" in text
    assert "https://***@api.example.com:8443/v1/items?offset=200&token=***&limit=100" in text
    assert "busy" in text
    for secret in ("pa55word", "alice", "T0K"):
        assert secret not in text
    assert (error.page, error.status, error.body, error.attempts) == (7, 503, "busy", 8)
    assert error.url == redact_url(SECRET_URL)


def test_page_fetch_error_without_status_or_body() -> None:
    error = PageFetchError("connection reset", page=0, url="http://h/items")
    assert one_line(error) == "page 0 at http://h/items: connection reset"
    assert (error.status, error.body, error.attempts) == (None, "", 1)


def test_records_error() -> None:
    error = RecordsError("'items' not found", page=3, url=SECRET_URL, path="items")
    text = one_line(error)
    assert text.startswith("page 3 at https://***@")
    assert "T0K" not in text
    assert (error.page, error.path, error.url) == (3, "items", redact_url(SECRET_URL))


def test_output_error() -> None:
    error = OutputError("permission denied", path="/out/items.jsonl")
    assert one_line(error) == "output /out/items.jsonl: permission denied"
    assert error.path == "/out/items.jsonl"


def test_message_field_is_the_line() -> None:
    error = OutputError("disk full", path="o.jsonl")
    assert error.message == str(error)


@pytest.mark.parametrize("name", ["keyword", "author", "design", "page", "monkey"])
def test_redact_url_keeps_ordinary_parameters(name: str) -> None:
    assert redact_url(f"http://h/x?{name}=v") == f"http://h/x?{name}=v"


@pytest.mark.parametrize(
    "name", ["api_key", "accessToken", "X-Auth", "client_secret", "sig", "client_assertion"]
)
def test_redact_url_hides_secret_parameters(name: str) -> None:
    assert "hide-me" not in redact_url(f"http://h/x?{name}=hide-me")


def test_redact_url_hides_a_token_in_the_fragment() -> None:
    assert "abc" not in redact_url("http://h/cb#access_token=abc&state=1")


def test_certificate_error_names_the_url_the_reason_and_the_fix() -> None:
    error = CertificateError(url="https://u:pw@h:8443/token", reason="self-signed certificate")
    assert one_line(error) == (
        "the TLS certificate of https://***@h:8443/token could not be verified (self-signed "
        "certificate); if the server's certificate comes from a private CA, set tls.ca_bundle to "
        "the CA's PEM file"
    )
    assert (error.url, error.reason) == ("https://***@h:8443/token", "self-signed certificate")


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("X-Api-Key", True),
        ("Cookie", True),
        ("Proxy-Authorization", True),
        ("Accept", False),
        ("Range", False),
        ("X-Request-Id", False),
    ],
)
def test_carries_secret(name: str, secret: bool) -> None:
    assert carries_secret(name) is secret
