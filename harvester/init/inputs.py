"""What init's flags make of the config: the source and auth sections as they will be written
(every secret as ${VAR}), and the config init probes with, those variables expanded."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from harvester.config import Config, parse_config
from harvester.errors import ConfigError, carries_secret
from harvester.init.draft import Auth
from harvester.secrets import Secrets

DEFAULT_SECRET_VARIABLE = "HARVESTER_CLIENT_SECRET"
# Where flags end up in the probing config, to name the flag in an error.
_FLAGS = {
    "source.url": "URL",
    "source.headers": "--header",
    "auth.token_url": "--token-url",
    "auth.client_id": "--client-id",
    "auth.scope": "--scope",
    "auth.token": "--header Authorization",
}


def probing_document(
    args: argparse.Namespace, environ: Mapping[str, str], *, token_url: str | None
) -> dict[str, Any]:
    """The config as written so far, ${VAR}s and all: source and auth from the flags."""
    source: dict[str, Any] = {"url": args.url}
    headers = dict(_header(text) for text in args.header)
    bearer = _bearer(headers)
    if headers:
        source["headers"] = headers
    raw: dict[str, Any] = {"source": source, "output": {"path": "init-probe.jsonl"}}
    if bearer is not None:
        if args.token_url or args.issuer or args.client_id:
            raise ConfigError("--header Authorization: give either it or the client's flags")
        raw["auth"] = {"type": "bearer", "token": bearer}
    elif args.token_url or args.issuer:
        if not args.client_id:
            raise ConfigError("--client-id: needed with --token-url or --issuer")
        variable = args.client_secret_env or DEFAULT_SECRET_VARIABLE
        if variable not in environ:
            raise ConfigError(
                f"--client-secret-env: the environment variable {variable} is not set: export "
                "the client secret in it"
            )
        raw["auth"] = {
            "type": "client_credentials",
            "token_url": token_url or "https://discovered.invalid/token",
            "client_id": args.client_id,
            "client_secret": f"${{{variable}}}",
            **({"scope": args.scope} if args.scope else {}),
        }
    elif args.client_id or args.client_secret_env or args.scope:
        raise ConfigError(
            "--client-id, --client-secret-env and --scope need --token-url or --issuer"
        )
    return raw


def _bearer(headers: dict[str, str]) -> str | None:
    """A static bearer token given as a header, taken out of `headers`: it is auth.token."""
    for name, value in list(headers.items()):
        scheme, _, token = value.partition(" ")
        if name.lower() == "authorization" and scheme.lower() == "bearer" and token.strip():
            del headers[name]
            return token.strip()
    return None


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name:
        raise ConfigError(f"--header: must be 'Name: value', got {text!r}")
    if carries_secret(name) and "${" not in value:
        raise ConfigError(
            f"--header {name}: its value would be written into the config: pass it as a "
            f"variable, --header '{name}: ${{API_TOKEN}}', with API_TOKEN exported"
        )
    return name, value


def probing_config(raw: dict[str, Any], environ: Mapping[str, str], secrets: Secrets) -> Config:
    try:
        config = parse_config(raw, environ=environ, overrides={"concurrency.workers": 1})
    except ConfigError as exc:
        key = str(exc.key)
        flag = _FLAGS.get(key)
        if key.startswith("source.headers."):
            flag = f"--header {key.removeprefix('source.headers.')}"
        raise ConfigError(f"{flag or exc.key}: {exc.detail}") from None
    secrets.add_configured(config.named_secrets())
    return config


def written_auth(raw: dict[str, Any], args: argparse.Namespace) -> Auth | None:
    auth = raw.get("auth")
    if auth is None:
        return None
    if auth["type"] == "bearer":
        return Auth(bearer=auth["token"])
    return Auth(
        token_url=auth["token_url"],
        client_id=auth["client_id"],
        secret_variable=args.client_secret_env or DEFAULT_SECRET_VARIABLE,
        scope=auth.get("scope"),
        issuer=args.issuer,
    )
