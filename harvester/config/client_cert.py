"""Mutual TLS: the client certificate and its key (tls.client_cert, tls.client_key), checked at
config load so that a wrong file fails naming its key, never at the first request, and loaded
into the run's one SSLContext.

The files are read with `cryptography` (not only ssl) because OpenSSL's own errors do not say
which file is wrong: "PEM lib" stands for a missing certificate, a missing key and a wrong
password alike. No message here quotes a file's content: a key never reaches any output.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from harvester.errors import ConfigError

if TYPE_CHECKING:
    from harvester.config.schema import TlsConfig

__all__ = ["check_client_cert", "load_client_cert"]

# One PEM private key block (PKCS#8, PKCS#1 RSA, SEC1 EC, encrypted or not, with headers).
_KEY_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S
)
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_client_cert(context: ssl.SSLContext, tls: TlsConfig) -> None:
    """Put the client certificate and key into `context` (tls.client_cert is set)."""
    assert tls.client_cert is not None
    password = tls.client_key_password.reveal() if tls.client_key_password else ""
    # A callable, never None: with None, OpenSSL would prompt on the terminal for the password
    # of an encrypted key, and a run from cron would hang there.
    context.load_cert_chain(tls.client_cert, tls.client_key, password=lambda: password)


def check_client_cert(tls: TlsConfig) -> None:
    """ConfigError naming the key when the client certificate, its key or the key's password is
    missing, unreadable, not PEM, or when the key does not belong to the certificate."""
    if tls.client_cert is None:
        for name in ("client_key", "client_key_password"):
            if getattr(tls, name) is not None:
                raise ConfigError("needs tls.client_cert", key=f"tls.{name}")
        return
    cert_path = tls.client_cert
    certificates = _certificates(cert_path)
    key_path, key_name = (
        (tls.client_key, "tls.client_key")
        if tls.client_key
        else (
            cert_path,
            "tls.client_cert",
        )
    )
    key_text = _read(key_path, key_name)
    block = _KEY_BLOCK.search(key_text)
    if block is None:
        hint = "" if tls.client_key else ": set tls.client_key to the key's PEM file"
        raise ConfigError(f"{key_path} holds no PEM private key{hint}", key=key_name)
    key = _private_key(block.group(0), key_path, key_name, tls)
    if key.public_key().public_bytes(*_SPKI) != certificates[0].public_key().public_bytes(*_SPKI):
        raise ConfigError(
            f"the key in {key_path} does not belong to the certificate in {cert_path} (their "
            "public keys differ)",
            key=key_name,
        )
    try:  # what cryptography reads, OpenSSL should too; said plainly if not
        load_client_cert(ssl.create_default_context(), tls)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{cert_path} cannot be loaded for TLS ({exc.reason or 'OpenSSL refused it'})",
            key="tls.client_cert",
        ) from None


def _certificates(path: str) -> list[x509.Certificate]:
    text = _read(path, "tls.client_cert")
    try:
        return x509.load_pem_x509_certificates(text)
    except ValueError:
        raise ConfigError(
            f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); convert DER or "
            "PKCS#12 with openssl x509 / openssl pkcs12",
            key="tls.client_cert",
        ) from None


def _private_key(pem: bytes, path: str, key_name: str, tls: TlsConfig) -> PrivateKeyTypes:
    encrypted = b"ENCRYPTED" in pem
    password = tls.client_key_password.reveal().encode() if tls.client_key_password else None
    if encrypted and password is None:
        raise ConfigError(
            f"is required: the key in {path} is encrypted", key="tls.client_key_password"
        )
    if not encrypted and password is not None:
        raise ConfigError(
            f"the key in {path} is not encrypted: leave tls.client_key_password out",
            key="tls.client_key_password",
        )
    try:
        key = serialization.load_pem_private_key(pem, password)
    except ValueError:
        if encrypted:
            raise ConfigError(
                f"does not decrypt the key in {path}", key="tls.client_key_password"
            ) from None
        raise ConfigError(f"{path} holds no private key that can be read", key=key_name) from None
    except UnsupportedAlgorithm:
        raise ConfigError(f"{path} holds a key of a kind TLS cannot use", key=key_name) from None
    return key


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", key=key) from None
    except ValueError:  # a NUL in the name: no file can have it
        raise ConfigError(f"is not a file name: {path!r}", key=key) from None
