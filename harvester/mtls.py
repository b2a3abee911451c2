"""Mutual TLS at run time: which config keys a refused client credential points at, and a
refusal that says a client certificate is missing or not accepted (RFC 8705, tls.client_cert).

The certificate itself is checked at config load (harvester/config/client_cert.py) and sent by
the run's one SSLContext (TlsConfig.ssl_context), on token and data requests alike.
"""

from __future__ import annotations

from harvester.config import AuthConfig

__all__ = ["CERT_WANTED", "client_credential_keys", "wants_client_cert"]

CERT_WANTED = (
    "the server wants a client certificate, and this run sent none it accepts: set "
    "tls.client_cert and tls.client_key (mutual TLS)"
)


def client_credential_keys(auth: AuthConfig) -> str:
    """The key(s) holding what authenticates the client, besides auth.client_id."""
    if auth.auth_method == "tls_client_auth":
        return "tls.client_cert"
    return "auth.client_secret"


def wants_client_cert(status: int, error: str | None, description: str | None) -> bool:
    """Whether a refusal says that a client certificate is missing or not accepted: an error
    or error_description about a certificate, on a 400, 401 or 403."""
    said = f"{error or ''} {description or ''}".lower()
    return status in (400, 401, 403) and "certificate" in said
