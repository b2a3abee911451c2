"""Where a config holds secrets: each secret value by the key path that holds it.

The run's registry (harvester.secrets) learns them under these names, which also name their
checkpoint placeholders: a key path stays the same when the rest of the config changes.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from yarl import URL

from harvester.errors import carries_secret
from harvester.proxies import environment_proxies

if TYPE_CHECKING:
    from harvester.config import Config


def config_secrets(config: Config) -> dict[str, str]:
    """{key path: value}: the client secret and token, whatever travels in a secret-looking
    header or parameter (Authorization, api_key), and a password in a URL's userinfo (with the
    Basic credential an HTTP client makes of it). The registry leaves out values too short to
    mask."""
    auth, source = config.auth, config.source
    found = {
        key: secret.reveal()
        for key, secret in (
            ("auth.client_secret", auth.client_secret),
            ("auth.token", auth.token),
            ("tls.client_key_password", config.tls.client_key_password),
        )
        if secret is not None
    }
    sections = (
        ("source.headers", source.headers.items()),
        ("source.params", source.params.items()),
        ("auth.extra_params", auth.extra_params.items()),
        ("source.url", parse_qsl(urlsplit(source.url).query)),  # an API key in the URL itself
    )
    for section, pairs in sections:
        for name, value in pairs:
            if carries_secret(name):
                found[f"{section}.{name}"] = value
                for i, word in enumerate(value.split()[1:], 1):  # "Bearer <token>": the token
                    found[f"{section}.{name}[{i}]"] = word
    urls = [("source.url", source.url), ("auth.token_url", auth.token_url)]
    urls += [("source.proxy", source.proxy), ("auth.proxy", auth.proxy)]
    urls += [(f"env.{name}", value) for name, value in environment_proxies()]
    for key, url in urls:
        found.update(_userinfo(key, url if url is None or "://" in url else f"http://{url}"))
    if auth.private_key_password is not None:
        found["auth.private_key_password"] = auth.private_key_password.reveal()
    if auth.private_key is not None and is_pem(auth.private_key.reveal()):
        found.update(pem_secrets("auth.private_key", auth.private_key.reveal()))
    return found


def is_pem(text: str) -> bool:
    """Whether `text` is PEM itself (auth.private_key from ${VAR}) rather than a file's path."""
    # A path never holds the dashes of a PEM boundary; a PEM pasted into ${VAR} always does.
    return "-----BEGIN" in text


def pem_secrets(key: str, pem: str) -> dict[str, str]:
    """The PEM under `key`, and each line of its body under key[i]: a message that quotes one
    line of a key shows no more of it than the whole would."""
    found = {key: pem}
    lines = [line.strip() for line in pem.replace("\\n", "\n").splitlines()]
    body = [line for line in lines if line and not line.startswith("-----") and ":" not in line]
    found.update({f"{key}[{i}]": line for i, line in enumerate(body, 1) if len(line) >= 16})
    return found


def _userinfo(key: str, url: str | None) -> dict[str, str]:
    """The password in `url`'s userinfo, as written and as an HTTP client sends it (Basic)."""
    try:
        parsed = URL(url or "")
    except ValueError:  # the config's checks say what is wrong with it
        return {}
    if not parsed.password:
        return {}
    pair = f"{parsed.user or ''}:{parsed.password}"
    found = {f"{key}.password": parsed.password}
    if parsed.raw_password and parsed.raw_password != parsed.password:
        found[f"{key}.password(raw)"] = parsed.raw_password
    for encoding in ("latin-1", "utf-8"):  # aiohttp's BasicAuth, and what most servers decode
        try:
            found[f"{key}.password(basic-{encoding})"] = base64.b64encode(
                pair.encode(encoding)
            ).decode()
        except UnicodeEncodeError:
            continue
    return found
