"""The demo's command-line switches for JWT client assertions and token response shapes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .settings import DemoSettings


def add_token_args(p: argparse.ArgumentParser) -> None:
    """Switches for harvester.demo.assertions and harvester.demo.token_shapes."""
    d = DemoSettings()
    group = p.add_argument_group("client assertions and token shapes")
    group.add_argument(
        "--assertion-jwks",
        type=Path,
        metavar="FILE",
        help="accept private_key_jwt assertions signed by the keys of this JWKS (JSON file)",
    )
    group.add_argument(
        "--secret-assertions",
        action="store_true",
        help="accept client_secret_jwt assertions (HS256 with the client secret)",
    )
    group.add_argument("--assertion-audience", help="the aud expected (default: the token URL)")
    group.add_argument(
        "--assertion-leeway", type=float, default=d.assertion_leeway, help="clock skew allowed"
    )
    group.add_argument(
        "--token-failures", type=int, default=0, help="the first N token requests answer 503"
    )
    group.add_argument(
        "--token-field", default=d.token_field, help="dotted path of the token in the answer"
    )
    group.add_argument(
        "--expires-at", choices=["none", "epoch", "iso"], default="none", help="absolute expiry"
    )
    group.add_argument("--token-type", default=d.token_type, help="the token_type answered")
    group.add_argument(
        "--token-header", default=d.token_header, help="where data requests carry the token"
    )
    group.add_argument("--token-scheme", help='its scheme (default: the token type; "" none)')


def token_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The DemoSettings fields of `add_token_args`'s switches."""
    jwks = json.loads(args.assertion_jwks.read_text()) if args.assertion_jwks else None
    return {
        "assertion_jwks": jwks,
        "secret_assertions": args.secret_assertions,
        "assertion_audience": args.assertion_audience,
        "assertion_leeway": args.assertion_leeway,
        "token_failures": args.token_failures,
        "token_field": args.token_field,
        "expires_at": args.expires_at,
        "token_type": args.token_type,
        "token_header": args.token_header,
        "token_scheme": args.token_scheme,
    }
