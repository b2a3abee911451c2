"""Mutual TLS at run time: which config keys a refused client credential points at, and a
handshake the server ended because no client certificate came (RFC 8705, tls.client_cert).

The certificate itself is checked at config load (harvester/config/client_cert.py) and sent by
the run's one SSLContext (TlsConfig.ssl_context), on token and data requests alike.
"""

from __future__ import annotations

import ssl

from harvester.config import AuthConfig

__all__ = ["client_credential_keys", "missing_client_cert"]

# What OpenSSL calls the alerts a server sends when it wanted a certificate and got none (TLS 1.3
# has its own; TLS 1.2 servers send a handshake failure).
_CERT_ALERTS = ("CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE")


def client_credential_keys(auth: AuthConfig) -> str:
    """The key(s) holding what authenticates the client, besides auth.client_id."""
    if auth.auth_method == "tls_client_auth":
        return "tls.client_cert"
    return "auth.client_secret"


def missing_client_cert(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is the server's alert that it requires a client
    certificate."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and any(
            alert in str(seen.reason or seen).upper() for alert in _CERT_ALERTS
        ):
            return True
        seen = seen.__cause__ or seen.__context__
        if seen is exc:
            break
    return False
