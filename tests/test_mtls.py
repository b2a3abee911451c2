"""Mutual TLS through the command line against the demo API on https: tls.client_cert and
tls.client_key on token and data requests alike, auth_method tls_client_auth (RFC 8705), the
server refusing a run without a certificate, and every bad file failing at config load naming
its key. No output holds the client secret, the key's password or a line of the key."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harvester.config import load_config
from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.demo.launch import demo_process
from harvester.demo.mtls import CertificateFiles, DemoCertificates
from harvester.mtls import wants_client_cert

from .conftest import (
    SECRET,
    CliResult,
    assert_one_clear_line,
    expected_bytes,
    run_cli,
    write_config_file,
)

RECORDS = 300
PASSWORD = "k3y-PASSWORD-77a1"
ONLY_CERT: dict[str, Any] = {"auth_method": "tls_client_auth", "client_secret": None}


@dataclass(frozen=True)
class Mtls:
    certificates: DemoCertificates
    files: CertificateFiles  # under the config's folder, in tls/
    tls: dict[str, Any]  # the config's tls section, with paths relative to its folder


@pytest.fixture
def mtls(tmp_path: Path) -> Mtls:
    certificates = DemoCertificates("demo")
    files = certificates.write(tmp_path / "tls")
    tls = {
        "ca_bundle": "tls/ca.pem",
        "client_cert": "tls/client.pem",
        "client_key": "tls/client.key",
    }
    return Mtls(certificates, files, tls)


@contextlib.asynccontextmanager
async def mtls_demo(mtls: Mtls, **settings: Any) -> AsyncIterator[DemoServer]:
    """The demo API on https, asking for a client certificate; client secret SECRET."""
    context = mtls.certificates.server_context()
    demo_settings = DemoSettings(records=RECORDS, client_secret=SECRET, **settings)
    async with run_demo(demo_settings, ssl_context=context) as demo:
        yield demo


def assert_no_key_material(result: CliResult, files: CertificateFiles) -> None:
    """Neither the password nor any line of the key (as written, or as generated) shows."""
    assert PASSWORD not in result.output and SECRET not in result.output
    for line in files.key.read_text().splitlines():
        if not line.startswith("-----"):
            assert line not in result.output


async def test_tls_client_auth_harvests_with_the_certificate_alone(
    tmp_path: Path, mtls: Mtls
) -> None:
    async with mtls_demo(mtls, client_cert_required="both") as demo:
        config = write_config_file(tmp_path, demo.url, auth=ONLY_CERT, tls=mtls.tls)
        result = await run_cli(str(config))
        issued = demo.stats.tokens_issued
    assert result.code == 0, result.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == expected_bytes(RECORDS)
    assert issued == 1
    assert_no_key_material(result, mtls.files)


async def test_mtls_with_client_secret_basic_and_an_encrypted_key(
    tmp_path: Path, mtls: Mtls
) -> None:
    mtls.certificates.write(tmp_path / "tls", key_password=PASSWORD)
    tls = {**mtls.tls, "client_key_password": "${KEY_PASSWORD}"}
    env = {"KEY_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}
    async with mtls_demo(mtls, client_cert_required="both") as demo:
        config = write_config_file(tmp_path, demo.url, auth={"client_secret": SECRET}, tls=tls)
        result = await run_cli(str(config), env=env)
        printed = await run_cli(str(config), "--print-config", env=env)
    assert result.code == 0, result.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == expected_bytes(RECORDS)
    assert "client_key_password: '***'" in printed.stdout
    for run in (result, printed):
        assert_no_key_material(run, mtls.files)


@pytest.mark.parametrize(
    ("required", "said"),
    [("token", ("invalid_client", "/oauth2/token")), ("data", ("status 403", "/items"))],
)
async def test_a_missing_client_certificate_is_named_when_the_server_refuses(
    tmp_path: Path, mtls: Mtls, required: str, said: tuple[str, str]
) -> None:
    async with mtls_demo(mtls, client_cert_required=required) as demo:
        tls = {"ca_bundle": "tls/ca.pem"}
        config = write_config_file(tmp_path, demo.url, auth={"client_secret": SECRET}, tls=tls)
        result = await run_cli(str(config))
    assert result.code == 1
    assert_one_clear_line(result, "client certificate", "tls.client_cert", *said)
    assert not (tmp_path / "out.jsonl").exists()


async def test_a_certificate_for_another_client_is_refused_naming_tls_client_cert(
    tmp_path: Path, mtls: Mtls
) -> None:
    other = mtls.certificates.ca.issue_cert("other.clients.invalid", common_name="other")
    other.cert_chain_pems[0].write_to_path(str(mtls.files.cert))
    other.private_key_pem.write_to_path(str(mtls.files.key))
    async with mtls_demo(mtls, client_cert_required="token") as demo:
        config = write_config_file(tmp_path, demo.url, auth=ONLY_CERT, tls=mtls.tls)
        result = await run_cli(str(config))
    assert result.code == 1
    assert_one_clear_line(result, "tls.client_cert", "does not match client_id")
    assert_no_key_material(result, mtls.files)


# --- bad files, at config load --------------------------------------------------------------


def _break(files: CertificateFiles, how: str) -> dict[str, Any]:
    """Spoil the client certificate files as `how` says; the tls section's changes."""
    if how == "missing certificate":
        files.cert.unlink()
    elif how == "certificate not PEM":
        files.cert.write_bytes(b"\x30\x82\x01\x0a not a PEM file")
    elif how == "key not PEM":
        files.key.write_text("just some text\n")
    elif how == "key of another certificate":
        other = DemoCertificates("demo").client
        other.private_key_pem.write_to_path(str(files.key))
    elif how == "wrong password":
        return {"client_key_password": "not-" + PASSWORD}
    elif how == "password missing":
        return {"client_key_password": None}
    elif how == "password for a plain key":
        return {"client_key_password": PASSWORD}
    return {}


BAD_FILES = {
    "missing certificate": ("tls.client_cert", "cannot read", 2),
    "certificate not PEM": ("tls.client_cert", "no PEM certificate", 2),
    "key not PEM": ("tls.client_key", "no PEM private key", 2),
    "key of another certificate": ("tls.client_key", "does not belong to the certificate", 2),
    "wrong password": ("tls.client_key_password", "does not decrypt", 2),
    "password missing": ("tls.client_key_password", "is required", 2),
    "password for a plain key": ("tls.client_key_password", "not encrypted", 2),
}


@pytest.mark.parametrize("how", list(BAD_FILES))
async def test_a_bad_client_certificate_file_fails_at_load_naming_its_key(
    tmp_path: Path, mtls: Mtls, how: str
) -> None:
    encrypted = how in ("wrong password", "password missing")
    if encrypted:
        mtls.certificates.write(tmp_path / "tls", key_password=PASSWORD)
    tls = {**mtls.tls, **({"client_key_password": PASSWORD} if encrypted else {})}
    tls.update(_break(mtls.files, how))
    tls = {key: value for key, value in tls.items() if value is not None}
    config = write_config_file(tmp_path, "https://127.0.0.1:9", auth=ONLY_CERT, tls=tls)
    result = await run_cli(str(config))
    key, words, code = BAD_FILES[how]
    assert result.code == code
    line = assert_one_clear_line(result, f"{key}: ", words)
    assert "Traceback" not in result.output
    if mtls.files.key.exists():
        assert_no_key_material(result, mtls.files)
    assert str(tmp_path) in line or how.startswith("password")


async def test_tls_client_auth_needs_a_certificate_and_refuses_a_secret(
    tmp_path: Path, mtls: Mtls
) -> None:
    config = write_config_file(tmp_path, "https://127.0.0.1:9", auth=ONLY_CERT)
    without = await run_cli(str(config))
    auth = {**ONLY_CERT, "client_secret": SECRET}
    config = write_config_file(tmp_path, "https://127.0.0.1:9", auth=auth, tls=mtls.tls)
    with_secret = await run_cli(str(config))
    assert without.code == with_secret.code == 2
    assert_one_clear_line(without, "tls.client_cert: is required", "tls_client_auth")
    assert_one_clear_line(with_secret, "auth.client_secret: is not sent", "tls_client_auth")


def test_the_readme_s_auth_configs_load(tmp_path: Path, mtls: Mtls) -> None:
    """Each short config of README's auth section loads as written (the files beside it)."""
    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text[text.index("Each method in six lines or fewer") : text.index("**Discovery**")]
    snippets = [block.split("```", 1)[0] for block in section.split("```yaml\n")[1:]]
    assert len(snippets) == 3 and all(len(s.strip().splitlines()) <= 6 for s in snippets)
    mtls.certificates.write(tmp_path, key_password=PASSWORD)
    rest = "source: {url: https://api.example.com/items}\noutput: {path: out.jsonl}\n"
    env = {"KEY_PASSWORD": PASSWORD, "CLIENT_SECRET": SECRET}
    for snippet in snippets:
        (tmp_path / "config.yaml").write_text(snippet + rest)
        if "tls_client_auth" not in snippet and "client_key_password" not in snippet:
            mtls.certificates.write(tmp_path)  # the second one's key is not encrypted
        config = load_config(tmp_path / "config.yaml", environ=env)
        assert config.auth.type == "client_credentials"


@pytest.mark.parametrize(
    ("status", "said", "wanted"),
    [
        (401, "client certificate required", True),
        (403, '{"error": "client_certificate_required"}', True),
        (400, "<h1>400 Bad Request</h1> No required SSL certificate was sent", True),
        (403, "you may not read the certificate inventory", False),  # the API's own business
        (404, "client certificate required", False),
    ],
)
def test_which_refusals_are_about_a_client_certificate(
    status: int, said: str, wanted: bool
) -> None:
    assert wants_client_cert(status, None, said) is wanted


async def test_the_demo_process_serves_https_and_writes_the_client_s_files(tmp_path: Path) -> None:
    options = ["--port", "0", "--records", str(RECORDS), "--quiet", "--issuer-path", "/tenant"]
    options += ["--https", str(tmp_path / "tls"), "--client-cert-required", "both"]
    with demo_process(options) as url:
        assert url.startswith("https://127.0.0.1:")
        auth = {**ONLY_CERT, "token_url": None, "issuer": f"{url}/tenant"}
        tls = {"ca_bundle": "tls/ca.pem", "client_cert": "tls/client.pem"}
        tls["client_key"] = "tls/client.key"
        result = await run_cli(str(write_config_file(tmp_path, url, auth=auth, tls=tls)))
    assert result.code == 0, result.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == expected_bytes(RECORDS)
