"""Mutual TLS for the demo API: the client certificate a request came with, where one is
required (`client_cert_required`), and throwaway certificates (trustme) to serve https with.

A provider registering a client for tls_client_auth (RFC 8705 section 2.1) names the subject
its certificate must carry; the demo's rule is that the certificate's common name is the
client_id the form gives.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from aiohttp import web

if TYPE_CHECKING:
    import trustme

# Where the demo asks for a client certificate over TLS and refuses a request without one.
ClientCertRequired = Literal["none", "token", "data", "both"]
CLIENT_CERT_REQUIRED: tuple[ClientCertRequired, ...] = get_args(ClientCertRequired)


def client_common_name(request: web.Request) -> str | None:
    """The common name of the verified client certificate the connection presented, or None."""
    transport = request.transport
    peer: Any = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (peer or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def certificate_missing(request: web.Request, required: ClientCertRequired, where: str) -> bool:
    """Whether `where` ("token" or "data") requires a client certificate this request lacks."""
    return required in (where, "both") and client_common_name(request) is None


def certificate_refusal() -> web.Response:
    """What a data endpoint answers a request without the client certificate it requires."""
    return web.json_response(
        {"error": "client_certificate_required", "error_description": "no client certificate"},
        status=403,
    )


@dataclass(frozen=True)
class CertificateFiles:
    """The PEM files a client needs: the CA to trust, its certificate and its key."""

    ca: Path
    cert: Path
    key: Path


class DemoCertificates:
    """A throwaway CA, a server certificate for 127.0.0.1 and localhost, and a client
    certificate whose common name is `client_id`. Needs trustme (the demo extra)."""

    def __init__(self, client_id: str = "demo") -> None:
        try:
            import trustme
        except ImportError:  # pragma: no cover - the demo extra holds it
            raise RuntimeError("https needs trustme: pip install 'harvester[demo]'") from None
        self.ca = trustme.CA()
        self._server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.client: trustme.LeafCert = self.ca.issue_cert(
            f"{client_id}.clients.invalid", common_name=client_id
        )

    def server_context(self) -> ssl.SSLContext:
        """The server's TLS context: a client certificate is asked for and verified when sent;
        each endpoint decides whether it must come (client_cert_required)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server.configure_cert(context)
        self.ca.configure_trust(context)
        # Not CERT_REQUIRED: asyncio's server closes a handshake without the alert then, and a
        # client hears only "connection reset", which names nothing.
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def write(self, folder: Path, *, key_password: str | None = None) -> CertificateFiles:
        """ca.pem, client.pem and client.key in `folder`; the key encrypted with `key_password`
        if given."""
        folder.mkdir(parents=True, exist_ok=True)
        files = CertificateFiles(folder / "ca.pem", folder / "client.pem", folder / "client.key")
        self.ca.cert_pem.write_to_path(str(files.ca))
        files.cert.write_bytes(b"".join(pem.bytes() for pem in self.client.cert_chain_pems))
        files.key.write_bytes(encrypted_key(self.client.private_key_pem.bytes(), key_password))
        files.key.chmod(0o600)
        return files


def encrypted_key(pem: bytes, password: str | None) -> bytes:
    """`pem` (an unencrypted private key) as PKCS#8, encrypted with `password` if given."""
    if password is None:
        return pem
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem, None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
