"""client_secret_basic: the id and secret are encoded so that every server decodes them back."""

from __future__ import annotations

import base64
from urllib.parse import unquote, unquote_plus

from hypothesis import given
from hypothesis import strategies as st

from harvester.client_auth import ClientAuth
from harvester.config import parse_config
from harvester.secrets import Secrets


def basic_pair(client_id: str, secret: str) -> tuple[str, str]:
    config = parse_config(
        {
            "source": {"url": "http://127.0.0.1:1/items"},
            "auth": {
                "token_url": "http://127.0.0.1:1/token",
                "client_id": client_id,
                "client_secret": secret,
            },
            "output": {"path": "out.jsonl"},
        },
        environ={},
    )
    form, headers = ClientAuth(config.auth, Secrets()).credentials(
        token_url="http://127.0.0.1:1/token"
    )
    assert form == {}
    scheme, _, credential = headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    encoded_id, _, encoded_secret = base64.b64decode(credential).decode().partition(":")
    return encoded_id, encoded_secret


def test_a_space_is_sent_as_percent_20_which_authlib_reads_back() -> None:
    # authlib's AuthorizationServer decodes Basic with unquote (not unquote_plus): a "+" for the
    # space made it refuse the secret with invalid_client (benchmarks/third_party_auth.py).
    encoded_id, encoded_secret = basic_pair("svc one", "a b+c%d:e")
    assert (encoded_id, encoded_secret) == ("svc%20one", "a%20b%2Bc%25d%3Ae")


@given(
    client_id=st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"], exclude_characters="$"),
        min_size=1,
    ),
    secret=st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"], exclude_characters="$"),
        min_size=1,
    ),
)
def test_form_decoders_and_percent_decoders_both_read_the_secret_back(
    client_id: str, secret: str
) -> None:
    encoded_id, encoded_secret = basic_pair(client_id, secret)
    for decode in (unquote_plus, unquote):  # RFC 6749 2.3.1 servers, and authlib's
        assert (decode(encoded_id), decode(encoded_secret)) == (client_id, secret)
