"""Mutual TLS at run time: which config keys a refused client credential points at, and a
refusal that says a client certificate is missing or not accepted (RFC 8705, tls.client_cert).

The certificate itself is checked at config load (harvester/config/client_cert.py) and sent by
the run's one SSLContext (TlsConfig.ssl_context), on token and data requests alike.
"""

from __future__ import annotations

import re

from harvester.config import AuthConfig

_ABOUT_CLIENT_CERT = re.compile(r"client[ _-]?cert|required ssl certificate", re.IGNORECASE)

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
    """Whether a refusal (400, 401, 403) says that a client certificate is missing or not
    accepted: "client certificate", "client_cert...", or nginx's "No required SSL certificate
    was sent"; a mere "certificate" may be the API's own business."""
    said = f"{error or ''} {description or ''}"
    return status in (400, 401, 403) and _ABOUT_CLIENT_CERT.search(said) is not None
