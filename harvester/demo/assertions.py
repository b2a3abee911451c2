"""JWT client assertions at the demo's token endpoint (RFC 7523 section 2.2), as a provider
checks them: the signature (the public keys of `assertion_jwks`, or the client secret for
HS256 when `secret_assertions`), iss = sub = the client, aud, exp and iat within
`assertion_leeway` seconds of a clock `assertion_clock_offset` seconds ahead, and a jti never
seen before.

PyJWT is imported only when a request carries an assertion: the demo needs the jwt extra then.
"""

from __future__ import annotations

import secrets
import time
import warnings
from collections.abc import Mapping
from typing import Any

from .settings import DemoSettings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_PUBLIC_KEY_ALGS = ("RS256", "PS256", "ES256", "EdDSA")
_REQUIRED = ["iss", "sub", "aud", "exp", "iat", "jti"]


class AssertionRefused(Exception):
    """Why the assertion does not authenticate the client: the error_description to send."""


def check_assertion(
    form: Mapping[str, str], endpoint: str, settings: DemoSettings, used_jti: set[str]
) -> str:
    """The client the assertion in `form` proves; AssertionRefused saying why not.

    A jti is spent once its signature checks out, whatever the answer: a second use is refused
    (`used_jti` remembers them)."""
    import jwt

    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise AssertionRefused("client_assertion_type must be " + ASSERTION_TYPE)
    assertion = form.get("client_assertion", "")
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError:
        raise AssertionRefused("client_assertion is not a JWT") from None
    claims = _verified_claims(jwt, assertion, header, endpoint, settings)
    now = time.time() + settings.assertion_clock_offset
    if claims["exp"] < now - settings.assertion_leeway:
        raise AssertionRefused("client_assertion has expired")
    if claims["iat"] > now + settings.assertion_leeway:
        raise AssertionRefused("client_assertion is issued in the future")
    client = claims["iss"]
    if claims["sub"] != client or form.get("client_id", client) != client:
        raise AssertionRefused("iss, sub and client_id must name the same client")
    if not secrets.compare_digest(str(client).encode(), settings.client_id.encode()):
        raise AssertionRefused("unknown client")
    jti = str(claims["jti"])
    if jti in used_jti:
        raise AssertionRefused("client_assertion jti has been used before")
    used_jti.add(jti)
    return str(client)


def _verified_claims(
    jwt: Any, assertion: str, header: dict[str, Any], endpoint: str, settings: DemoSettings
) -> dict[str, Any]:
    alg = header.get("alg")
    if alg == "HS256" and settings.secret_assertions:
        keys: list[Any] = [settings.client_secret]
    elif alg in _PUBLIC_KEY_ALGS and settings.assertion_jwks is not None:
        kid = header.get("kid")
        jwks = jwt.PyJWKSet.from_dict(settings.assertion_jwks).keys
        keys = [k.key for k in jwks if kid is None or k.key_id in (None, kid)]
    else:
        raise AssertionRefused(f"client assertions signed with {alg!r} are not accepted")
    audience = [settings.assertion_audience or endpoint]
    # Times are checked by the caller, against the demo's own (offset) clock.
    options = {"verify_exp": False, "verify_iat": False, "verify_nbf": False, "require": _REQUIRED}
    for key in keys:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a short demo secret as an HS256 key
                claims: dict[str, Any] = jwt.decode(
                    assertion, key, algorithms=[alg], audience=audience, options=options
                )
            return claims
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError as exc:
            raise AssertionRefused(f"client_assertion refused: {exc}") from None
    raise AssertionRefused("client_assertion signature does not verify")
