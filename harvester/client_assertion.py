"""JWT client assertions (RFC 7523 section 2.2): the signing key, checked once, and a fresh,
signed assertion for every token request.

PyJWT signs, with cryptography for the keys; both come with the jwt extra
(`pip install 'harvester[jwt]'`) and are imported only when an auth_method needs them. No error
names more of a key than the config key that holds it: never its text, never the library's
message about it.
"""

from __future__ import annotations

import functools
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from harvester.config.schema import AuthConfig
from harvester.errors import ConfigError
from harvester.secret_sources import is_pem

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_METHODS = ("private_key_jwt", "client_secret_jwt")
# Long enough for a token request and its retries' clock drift, short enough that an assertion
# seen by anyone else is worthless soon; each request gets a new one anyway.
ASSERTION_LIFETIME = 60
# RFC 7518 section 3.3: RSA keys of 2048 bits or more.
_SHORTEST_RSA = 2048
_KEY = "auth.private_key"


@dataclass(frozen=True)
class SigningKey:
    """The key that signs assertions, its algorithm, and the PEM text it came from."""

    key: Any = field(repr=False)  # a cryptography private key, or the client secret (HS256)
    alg: str
    pem: str | None = field(default=None, repr=False)


def check_client_auth(auth: AuthConfig) -> None:
    """ConfigError for a JWT key set where auth.auth_method does not use it, or a signing key
    that does not do (loaded here, so that a bad one fails before any request)."""
    misplaced: tuple[str, ...] = ()
    if auth.auth_method not in JWT_METHODS:  # the secret itself is sent: nothing is signed
        misplaced = ("signing_alg", "assertion_audience")
    for name in misplaced:
        if getattr(auth, name) is not None:
            raise ConfigError(
                f"applies only to auth_method {' or '.join(JWT_METHODS)}", key=f"auth.{name}"
            )
    if auth.auth_method != "private_key_jwt":
        for name in ("private_key", "private_key_password", "key_id"):
            if getattr(auth, name) is not None:
                raise ConfigError("applies only to auth_method private_key_jwt", key=f"auth.{name}")
    if auth.auth_method in JWT_METHODS:
        signing_key(auth)


def signing_key(auth: AuthConfig) -> SigningKey:
    """The key auth.auth_method signs with; ConfigError naming the key when it does not do."""
    if auth.auth_method == "client_secret_jwt":
        _jwt()
        if auth.signing_alg not in (None, "HS256"):
            raise ConfigError(
                f"client_secret_jwt signs with HS256 only, got {auth.signing_alg}",
                key="auth.signing_alg",
            )
        assert auth.client_secret is not None
        return SigningKey(auth.client_secret.reveal(), "HS256")
    alg = auth.signing_alg or "RS256"
    if alg == "HS256":
        raise ConfigError(
            "HS256 signs with the client secret: use auth_method: client_secret_jwt",
            key="auth.signing_alg",
        )
    if auth.private_key is None or not auth.private_key.reveal().strip():
        raise ConfigError("is required when auth.auth_method is private_key_jwt", key=_KEY)
    pem = _read_pem(auth.private_key.reveal())
    password = auth.private_key_password.reveal() if auth.private_key_password else None
    key = _load_private_key(pem, password)
    _check_fit(key, alg)
    return SigningKey(key, alg, pem)


def make_assertion(
    key: SigningKey,
    *,
    client_id: str,
    audience: str,
    key_id: str | None = None,
    now: float | None = None,
) -> str:
    """A signed client assertion for one token request: never reused, so a unique jti."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": uuid.uuid4().hex,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    jwt = _jwt()
    with warnings.catch_warnings():
        # The provider chose the client secret; a short one is for it to fix, not for each run
        # to warn about.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        encoded: str = jwt.encode(
            claims, key.key, algorithm=key.alg, headers={"kid": key_id} if key_id else None
        )
    return encoded


def _jwt() -> ModuleType:
    try:
        import cryptography  # noqa: F401 (PyJWT's keys; a clear message here, not a deep one)
        import jwt
        import jwt.warnings
    except ImportError:
        raise ConfigError(
            "needs PyJWT and cryptography for JWT client authentication: "
            "pip install 'harvester[jwt]'",
            key="auth.auth_method",
        ) from None
    return jwt


def _read_pem(text: str) -> str:
    if is_pem(text):
        # A PEM squeezed onto one line, as .env files and CI variables often hold it ("\n"
        # written out), is the same PEM.
        return text if "\n" in text else text.replace("\\n", "\n")
    path = Path(text).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the key file {str(path)!r}: {exc.strerror or exc}", key=_KEY
        ) from None
    pem = data.decode("ascii", errors="replace")
    if not is_pem(pem):
        raise ConfigError(f"not a PEM private key (in {str(path)!r})", key=_KEY)
    return pem


# Loaded at config load and again by the run's ClientAuth: an RSA key's consistency check takes
# a tenth of a second or more, once is enough. Failures are not cached: they raise.
@functools.lru_cache(maxsize=8)
def _load_private_key(pem: str, password: str | None) -> Any:
    from cryptography.hazmat.primitives import serialization

    encrypted = "ENCRYPTED" in pem
    if encrypted and password is None:
        raise ConfigError(
            "is encrypted: set auth.private_key_password (e.g. ${KEY_PASSWORD})", key=_KEY
        )
    if password is not None and not encrypted:
        raise ConfigError(
            "is set, but auth.private_key is not encrypted: leave it out",
            key="auth.private_key_password",
        )
    try:
        return serialization.load_pem_private_key(
            pem.encode(), password.encode() if password is not None else None
        )
    except (ValueError, TypeError):
        # Neither the library's message nor the text: either may quote the key.
        if encrypted:
            raise ConfigError(
                "does not decrypt auth.private_key (a wrong password?)",
                key="auth.private_key_password",
            ) from None
        raise ConfigError("not a PEM private key", key=_KEY) from None
    except Exception:  # cryptography's UnsupportedAlgorithm: a key type it cannot load
        raise ConfigError("not a private key harvester can sign with", key=_KEY) from None


def _check_fit(key: Any, alg: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    fits: tuple[str, ...]
    if isinstance(key, rsa.RSAPrivateKey):
        kind, fits = f"a {key.key_size}-bit RSA key", ("RS256", "PS256")
        if alg in fits and key.key_size < _SHORTEST_RSA:
            raise ConfigError(
                f"{kind} is too short for {alg}: RFC 7518 asks for {_SHORTEST_RSA} bits or more",
                key=_KEY,
            )
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        kind = f"an EC key on {key.curve.name}"
        fits = ("ES256",) if key.curve.name == "secp256r1" else ()
    elif isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        kind, fits = "an Ed25519 or Ed448 key", ("EdDSA",)
    else:
        kind, fits = f"a {type(key).__name__}", ()
    if alg not in fits:
        fix = f"set auth.signing_alg to {' or '.join(fits)}" if fits else "use another key"
        raise ConfigError(f"{kind} does not fit auth.signing_alg {alg}: {fix}", key=_KEY)
