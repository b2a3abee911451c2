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
