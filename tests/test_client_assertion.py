"""The signing key of private_key_jwt and client_secret_jwt: each bad key fails at config load,
naming the key and showing none of it; the assertion's claims as RFC 7523 section 3 has them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from harvester.client_assertion import ASSERTION_LIFETIME, make_assertion, signing_key
from harvester.config import Config, load_config, parse_config
from harvester.errors import ConfigError
from tests.conftest import assert_one_clear_line, run_cli
from tests.jwt_keys import body_lines, new_key, pem

PASSWORD = "key-pass-7Hq2"
TOKEN_URL = "https://login.example.com/oauth2/token"
GARBLED = (
    "-----BEGIN PRIVATE KEY-----\n"
    "TUlJRXZBSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS1l3\n"
    "-----END PRIVATE KEY-----\n"
)


def jwt_config(**auth: Any) -> dict[str, Any]:
    return {
        "source": {"url": "https://api.example.com/items", "records": "items"},
        "auth": {
            "token_url": TOKEN_URL,
            "client_id": "svc",
            "auth_method": "private_key_jwt",
            **auth,
        },
        "output": {"path": "out.jsonl"},
    }


def load(environ: dict[str, str] | None = None, **auth: Any) -> Config:
    return parse_config(jwt_config(**auth), environ=environ or {})


def written(folder: Path, text: str) -> str:
    path = folder / "client.pem"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("auth", "key", "needle"),
    [
        (lambda d: {"private_key": written(d, "not a key")}, "auth.private_key", "not a PEM"),
        (lambda d: {"private_key": written(d, GARBLED)}, "auth.private_key", "not a PEM"),
        (lambda d: {"private_key": "${KEY}"}, "auth.private_key", "not a PEM private key"),
        (lambda d: {"private_key": str(d / "missing.pem")}, "auth.private_key", "cannot read"),
        (lambda d: {}, "auth.private_key", "is required"),
        (
            lambda d: {"private_key": written(d, pem(new_key("ES256"), PASSWORD))},
            "auth.private_key",
            "is encrypted: set auth.private_key_password",
        ),
        (
            lambda d: {
                "private_key": written(d, pem(new_key("ES256"), PASSWORD)),
                "private_key_password": "wrong-password-1",
                "signing_alg": "ES256",
            },
            "auth.private_key_password",
            "does not decrypt",
        ),
        (
            lambda d: {
                "private_key": written(d, pem(new_key("ES256"))),
                "private_key_password": PASSWORD,
            },
            "auth.private_key_password",
            "not encrypted",
        ),
        (
            lambda d: {"private_key": written(d, pem(new_key("ES256")))},
            "auth.private_key",
            "an EC key on secp256r1 does not fit auth.signing_alg RS256: set auth.signing_alg "
            "to ES256",
        ),
        (
            lambda d: {"private_key": written(d, pem(new_key("RS256"))), "signing_alg": "EdDSA"},
            "auth.private_key",
            "a 2048-bit RSA key does not fit auth.signing_alg EdDSA",
        ),
        (
            lambda d: {
                "private_key": written(
                    d, pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
                )
            },
            "auth.private_key",
            "too short",
        ),
        (
            lambda d: {"private_key": written(d, pem(new_key("RS256"))), "signing_alg": "HS256"},
            "auth.signing_alg",
            "client_secret_jwt",
        ),
        (
            lambda d: {
                "auth_method": "client_secret_jwt",
                "client_secret": "the-secret-1234",
                "signing_alg": "ES256",
            },
            "auth.signing_alg",
            "HS256 only",
        ),
        (
            lambda d: {
                "auth_method": "client_secret_basic",
                "client_secret": "s-1234",
                "key_id": "k",
            },
            "auth.key_id",
            "applies only to auth_method private_key_jwt",
        ),
        (
            lambda d: {
                "auth_method": "client_secret_post",
                "client_secret": "s-1234",
                "signing_alg": "RS256",
            },
            "auth.signing_alg",
            "applies only to auth_method private_key_jwt or client_secret_jwt",
        ),
    ],
    ids=[
        "no-pem",
        "garbled-pem",
        "garbled-pem-in-variable",
        "missing-file",
        "no-key",
        "encrypted-no-password",
        "wrong-password",
        "password-for-plain-key",
        "ec-key-rs256",
        "rsa-key-eddsa",
        "short-rsa",
        "hs256-with-a-key",
        "es256-with-a-secret",
        "key-id-with-basic",
        "alg-with-post",
    ],
)
def test_a_bad_key_fails_at_load_naming_the_key(
    tmp_path: Path, auth: Callable[[Path], dict[str, Any]], key: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"KEY": GARBLED}, **auth(tmp_path))
    assert caught.value.key == key
    assert needle in str(caught.value)
    for line in body_lines(GARBLED):
        assert line not in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert "wrong-password-1" not in str(caught.value)


async def test_a_bad_key_file_is_one_clear_line_through_the_cli(tmp_path: Path) -> None:
    text = pem(new_key("ES256"), PASSWORD)
    (tmp_path / "client.pem").write_text(text)
    config = tmp_path / "config.yaml"
    config.write_text(
        "source: {url: http://127.0.0.1:9/items}\n"
        "auth: {token_url: 'http://127.0.0.1:9/token', client_id: svc, "
        "auth_method: private_key_jwt, private_key: client.pem, signing_alg: ES256, "
        "private_key_password: wrong-password-1}\n"
        "output: {path: out.jsonl}\n"
    )
    result = await run_cli(str(config))
    assert result.code == 2
    assert_one_clear_line(result, "auth.private_key_password", "does not decrypt")
    assert "wrong-password-1" not in result.output
    assert all(line not in result.output for line in body_lines(text))


def test_a_relative_key_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "client.pem").write_text(pem(new_key("EdDSA")))
    config = tmp_path / "config.yaml"
    config.write_text(
        "source: {url: https://api.example.com/items}\n"
        f"auth: {{token_url: '{TOKEN_URL}', client_id: svc, auth_method: private_key_jwt, "
        "private_key: keys/client.pem, signing_alg: EdDSA}\n"
        "output: {path: out.jsonl}\n"
    )
    loaded = load_config(config)
    assert loaded.auth.private_key is not None
    assert loaded.auth.private_key.reveal() == str(tmp_path / "keys" / "client.pem")


def test_the_config_shows_no_key_and_no_password(tmp_path: Path) -> None:
    text = pem(new_key("ES256"), PASSWORD)
    config = load(
        {"KEY": text, "PASS": PASSWORD},
        private_key="${KEY}",
        private_key_password="${PASS}",
        signing_alg="ES256",
    )
    for shown in (repr(config), repr(config.auth), str(config.masked())):
        assert PASSWORD not in shown
        assert all(line not in shown for line in body_lines(text))
    named = config.named_secrets()
    assert named["auth.private_key"] == text
    assert named["auth.private_key_password"] == PASSWORD


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
def test_the_assertion_has_the_claims_of_rfc_7523(tmp_path: Path, alg: str) -> None:
    key = new_key(alg)
    config = load(private_key=written(tmp_path, pem(key)), signing_alg=alg, key_id="k7")
    signer = signing_key(config.auth)
    first = make_assertion(signer, client_id="svc", audience=TOKEN_URL, key_id="k7", now=1000)
    second = make_assertion(signer, client_id="svc", audience=TOKEN_URL, key_id="k7", now=1000)
    assert jwt.get_unverified_header(first)["kid"] == "k7"
    claims = jwt.decode(
        first,
        key.public_key(),
        algorithms=[alg],
        audience=TOKEN_URL,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == "svc"
    assert claims["iat"] == 1000
    assert claims["exp"] == 1000 + ASSERTION_LIFETIME
    assert claims["jti"] != jwt.decode(second, options={"verify_signature": False})["jti"]


def test_without_pyjwt_the_method_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jwt", None)  # as if it were not installed
    with pytest.raises(ConfigError) as caught:
        load(auth_method="client_secret_jwt", client_secret="the-secret-1234")
    assert caught.value.key == "auth.auth_method"
    assert "pip install 'harvester[jwt]'" in str(caught.value)


def test_the_readme_shows_each_way_to_authenticate_in_six_lines(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("Each way to authenticate")
    section = readme[start : readme.index("JWT client authentication (RFC 7523", start)]
    blocks = section.split("```yaml\n")[1:]
    assert len(blocks) == 4
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "svc.pem").write_text(pem(new_key("RS256")))
    for block in blocks:
        text = block.split("```")[0]
        assert len(text.splitlines()) <= 6, text
        path = tmp_path / "config.yaml"
        path.write_text(
            f"source: {{url: https://api.example.com/items}}\n{text}output: {{path: o}}\n"
        )
        config = load_config(path, environ={"SECRET": "the-secret-1234"})
        assert config.auth.client_id == "svc"


def test_a_pem_on_one_line_with_its_line_breaks_written_out_loads(tmp_path: Path) -> None:
    """As an .env file or a CI variable often holds it: "\\n" for each line break."""
    text = pem(new_key("ES256"))
    one_line = text.replace("\n", "\\n")
    config = load({"KEY": one_line}, private_key="${KEY}", signing_alg="ES256")
    assert signing_key(config.auth).pem == text
    named = config.named_secrets()
    assert set(body_lines(text)) <= set(named.values())
