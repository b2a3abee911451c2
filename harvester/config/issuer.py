"""The checks of auth.issuer (discovery) and of auth_method tls_client_auth (RFC 8705), which
reach across the auth and tls sections."""

from __future__ import annotations

from urllib.parse import urlsplit

from harvester.config.schema import AuthConfig, Config
from harvester.errors import ConfigError

__all__ = ["check_issuer", "check_tls_client_auth", "required_auth_keys"]


def required_auth_keys(auth: AuthConfig) -> list[str]:
    """The auth keys client_credentials cannot go without: issuer stands in for token_url,
    tls_client_auth needs no client_secret (the certificate authenticates), and private_key_jwt
    a private_key instead."""
    names = ["client_id"] if auth.issuer is not None else ["token_url", "client_id"]
    if auth.auth_method == "tls_client_auth":
        return names
    # private_key_jwt proves the client with auth.private_key instead of a secret.
    return [*names, "private_key" if auth.auth_method == "private_key_jwt" else "client_secret"]


def check_issuer(auth: AuthConfig) -> None:
    """auth.issuer: only for client_credentials, never with token_url (one place says where the
    secret goes), an http(s) URL without query or fragment (RFC 8414 section 2)."""
    if auth.issuer is None:
        return
    key = "auth.issuer"
    if auth.type != "client_credentials":
        raise ConfigError("applies only to auth.type client_credentials", key=key)
    if auth.token_url is not None:
        raise ConfigError(
            "cannot go with auth.token_url: give one of them (the issuer's discovery document "
            "names the token endpoint)",
            key=key,
        )
    parts = urlsplit(auth.issuer)
    if parts.query or parts.fragment:
        raise ConfigError(
            f"an issuer has no query or fragment (RFC 8414), got {auth.issuer!r}", key=key
        )


def check_tls_client_auth(config: Config) -> None:
    """tls_client_auth: the client certificate authenticates, so it must be there, and a client
    secret would never be sent (refused rather than silently unused)."""
    auth = config.auth
    if auth.type != "client_credentials" or auth.auth_method != "tls_client_auth":
        return
    if config.tls.client_cert is None:
        raise ConfigError(
            "is required with auth.auth_method tls_client_auth: the client certificate is what "
            "authenticates the client",
            key="tls.client_cert",
        )
    if auth.client_secret is not None:
        raise ConfigError(
            "is not sent with auth.auth_method tls_client_auth (the client certificate "
            "authenticates): leave it out",
            key="auth.client_secret",
        )
