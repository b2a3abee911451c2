"""Throwaway signing keys for the JWT client authentication tests, as PEM and as a JWKS."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def new_key(alg: str) -> PrivateKey:
    """A new private key that fits `alg` (RS256, PS256, ES256, EdDSA)."""
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    assert alg == "EdDSA"
    return ed25519.Ed25519PrivateKey.generate()


def pem(key: PrivateKey, password: str | None = None) -> str:
    """`key` as PKCS#8 PEM, encrypted with `password` if given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password is not None
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def body_lines(pem_text: str) -> list[str]:
    """The base64 lines of a PEM: none may show in any output."""
    return [line for line in pem_text.splitlines() if line and not line.startswith("-----")]


def jwks(*keys: tuple[str, PrivateKey]) -> dict[str, Any]:
    """The JWKS of the public halves of `keys`, each (kid, key)."""
    found = []
    for kid, key in keys:
        public = key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        found.append({**jwk, "kid": kid})
    return {"keys": found}
