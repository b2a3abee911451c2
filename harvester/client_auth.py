"""How the client proves who it is to the token endpoint: auth.auth_method.

client_secret_basic and client_secret_post send the secret itself (RFC 6749 section 2.3.1);
private_key_jwt and client_secret_jwt send a signed assertion instead (RFC 7523 section 2.2),
a fresh one for every token request, retries included, so that no jti is ever seen twice.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from harvester.client_assertion import (
    ASSERTION_TYPE,
    JWT_METHODS,
    SigningKey,
    make_assertion,
    signing_key,
)
from harvester.config import AuthConfig
from harvester.secret_sources import is_pem, pem_secrets
from harvester.secrets import Secrets


class ClientAuth:
    """The client authentication of every token request, made anew for each."""

    def __init__(self, config: AuthConfig, secrets: Secrets) -> None:
        """Loads the signing key (once) and tells `secrets` of every secret it holds."""
        self._config = config
        self._secrets = secrets
        self._key: SigningKey | None = None
        if config.auth_method in JWT_METHODS:
            self._key = signing_key(config)
            pem = config.private_key.reveal() if config.private_key is not None else ""
            if self._key.pem is not None and not is_pem(pem):  # read from a file
                secrets.add_configured(pem_secrets("auth.private_key(file)", self._key.pem))

    def credentials(self, *, token_url: str) -> tuple[dict[str, str], dict[str, str]]:
        """(form fields, headers) that authenticate one token request to `token_url` (the
        configured one, or the one the issuer's discovery document named)."""
        config = self._config
        assert config.client_id is not None
        if self._key is not None:
            assertion = make_assertion(
                self._key,
                client_id=config.client_id,
                audience=config.assertion_audience or token_url,
                key_id=config.key_id,
            )
            # As good as the secret for its minute: masked wherever it could show.
            self._secrets.add(assertion)
            form = {
                "client_id": config.client_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            }
            return form, {}
        assert config.client_secret is not None
        if config.auth_method == "client_secret_post":
            return {
                "client_id": config.client_id,
                "client_secret": config.client_secret.reveal(),
            }, {}
        # RFC 6749 section 2.3.1: form-encode id and secret before joining them for Basic. A space
        # as %20, not "+": a form decoder reads both as a space, but servers that percent-decode
        # only (authlib: unquote) would read "+" as a plus and refuse the secret.
        pair = f"{_form_encoded(config.client_id)}:{_form_encoded(config.client_secret.reveal())}"
        credential = base64.b64encode(pair.encode()).decode()
        self._secrets.add(credential)  # as good as the secret itself
        return {}, {"Authorization": "Basic " + credential}


def _form_encoded(value: str) -> str:
    """`value` encoded for Basic as RFC 6749 2.3.1 has it, every reserved character as %XX."""
    return quote(value, safe="")
