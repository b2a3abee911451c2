"""Config: load YAML, expand ${VAR}, validate once, freeze; every error names its key path."""

from __future__ import annotations

import copy
import dataclasses
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from harvester.config import Config, Secret, load_config, parse_config
from harvester.errors import ConfigError

# Exactly the keys the outside harness writes.
CONTRACT_YAML = """\
source: {url: http://127.0.0.1:8765/items, params: {}, headers: {}, records: items, timeout: 30}
auth:
  type: client_credentials
  token_url: http://127.0.0.1:8765/oauth2/token
  client_id: demo
  client_secret: "${HARVESTER_CLIENT_SECRET:-demo-secret}"
  scope: read
  auth_method: client_secret_basic
  extra_params: {}
  refresh_margin: 30
  token: null
pagination:
  style: offset
  page_size: 100
  offset_param: offset
  limit_param: limit
  start: 0
  total: body:total
  range_unit: items
concurrency: {workers: 16, max_buffered_pages: 64}
retry:
  max_attempts: 8
  initial_backoff: 0.5
  max_backoff: 60
  statuses: [408, 429, 500, 502, 503, 504]
output: {path: out/items.jsonl}
"""

SECRET = "s3cr3t-XYZ"
TOKEN = "b34r3r-T0K3N-XYZ"

CLIENT_CREDENTIALS = {
    "type": "client_credentials",
    "token_url": "http://127.0.0.1:8765/oauth2/token",
    "client_id": "demo",
    "client_secret": SECRET,
}


def minimal(**sections: Any) -> dict[str, Any]:
    """The smallest valid raw config, with `sections` merged over it."""
    raw: dict[str, Any] = {
        "source": {"url": "http://127.0.0.1:8765/items"},
        "output": {"path": "out.jsonl"},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if isinstance(values, dict) else values
    return raw


def config_error(raw: dict[str, Any], **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ=kwargs.pop("environ", {}), **kwargs)
    return info.value


@pytest.fixture
def contract_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONTRACT_YAML, encoding="utf-8")
    return path


# --- the full contract -----------------------------------------------------------------------


def test_contract_loads_with_every_value(contract_file: Path) -> None:
    config = load_config(contract_file, environ={})

    source = config.source
    assert (source.url, source.params, source.headers) == ("http://127.0.0.1:8765/items", {}, {})
    assert (source.records, source.timeout, source.connect_timeout) == ("items", 30.0, 10.0)
    assert (source.read_timeout, source.max_body_bytes, source.max_compression_ratio) == (
        30.0,
        256 * 1024 * 1024,
        100,
    )
    assert source.allow_private_hosts is False
    auth = config.auth
    assert auth.type == "client_credentials"
    assert auth.token_url == "http://127.0.0.1:8765/oauth2/token"
    assert (auth.client_id, auth.scope, auth.auth_method) == ("demo", "read", "client_secret_basic")
    assert auth.client_secret == Secret("demo-secret")
    assert (auth.extra_params, auth.refresh_margin, auth.token) == ({}, 30.0, None)
    p = config.pagination
    assert (p.style, p.page_size, p.offset_param, p.limit_param) == (
        "offset",
        100,
        "offset",
        "limit",
    )
    assert (p.start, p.total, p.range_unit) == (0, "body:total", "items")
    assert (config.concurrency.workers, config.concurrency.max_buffered_pages) == (16, 64)
    r = config.retry
    assert (r.max_attempts, r.initial_backoff, r.max_backoff) == (8, 0.5, 60.0)
    assert r.statuses == (408, 429, 500, 502, 503, 504)
    assert r.max_retry_after == 600.0
    # Relative to the config file's folder, not to the current one.
    assert config.output.path == str(contract_file.parent / "out" / "items.jsonl")


def test_contract_numbers_have_the_field_types(contract_file: Path) -> None:
    config = load_config(contract_file, environ={})
    assert type(config.source.timeout) is float
    assert type(config.auth.refresh_margin) is float
    assert type(config.retry.max_backoff) is float
    assert type(config.concurrency.workers) is int
    assert type(config.retry.statuses) is tuple


def test_contract_takes_the_secret_from_the_environment(contract_file: Path) -> None:
    config = load_config(contract_file, environ={"HARVESTER_CLIENT_SECRET": SECRET})
    assert config.auth.client_secret == Secret(SECRET)
    assert config.secrets() == [SECRET]


def test_config_and_its_sections_are_frozen(contract_file: Path) -> None:
    config = load_config(contract_file, environ={})
    sections = [getattr(config, f.name) for f in dataclasses.fields(config)]
    sections = [s for s in sections if dataclasses.is_dataclass(s)]  # not name, parent, ...
    for obj in [config, *sections]:
        name = dataclasses.fields(obj)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, None)


def test_minimal_config_gets_the_defaults() -> None:
    config = parse_config(minimal(), environ={})
    assert config.auth.type == "none"
    assert config.secrets() == []
    assert config.source.records == ""
    assert config.pagination.total == "body:total"
    assert config.concurrency.workers == 16
    assert config.retry.statuses == (408, 429, 500, 502, 503, 504)


def test_range_style_defaults_total_to_content_range() -> None:
    config = parse_config(minimal(pagination={"style": "range"}), environ={})
    assert config.pagination.total == "content-range"


@pytest.mark.parametrize("style", ["offset", "range"])
def test_explicit_total_is_kept(style: str) -> None:
    raw = minimal(pagination={"style": style, "total": "header:X-Total-Count"})
    assert parse_config(raw, environ={}).pagination.total == "header:X-Total-Count"


def test_parse_config_leaves_its_input_alone() -> None:
    raw = minimal(concurrency={"workers": "${W:-3}"})
    before = copy.deepcopy(raw)
    parse_config(raw, overrides={"concurrency.workers": 5}, environ={})
    assert raw == before


def test_params_and_headers_become_text() -> None:
    raw = minimal(source={"params": {"a": 1, "b": True, "c": 1.5}, "headers": {"X-N": 2}})
    source = parse_config(raw, environ={}).source
    assert source.params == {"a": "1", "b": "true", "c": "1.5"}
    assert source.headers == {"X-N": "2"}


def test_whole_float_fills_an_int_field() -> None:
    assert parse_config(minimal(concurrency={"workers": 4.0}), environ={}).concurrency.workers == 4


# --- ${VAR} expansion ------------------------------------------------------------------------


def test_variables_expand_inside_longer_strings() -> None:
    raw = minimal(source={"url": "http://${HOST:-localhost}:${PORT}/v1/items"})
    config = parse_config(raw, environ={"PORT": "9000"})
    assert config.source.url == "http://localhost:9000/v1/items"


def test_environment_wins_over_the_default() -> None:
    raw = minimal(output={"path": "${OUT:-default.jsonl}"})
    assert parse_config(raw, environ={"OUT": "env.jsonl"}).output.path == "env.jsonl"
    assert parse_config(raw, environ={}).output.path == "default.jsonl"


def test_default_may_be_empty() -> None:
    raw = minimal(source={"records": "${RECORDS:-}"})
    assert parse_config(raw, environ={}).source.records == ""


@pytest.mark.parametrize(
    ("raw", "var", "key"),
    [
        (minimal(auth={**CLIENT_CREDENTIALS, "client_id": "${CID}"}), "CID", "auth.client_id"),
        (minimal(source={"headers": {"X-Api": "key ${KEY}"}}), "KEY", "source.headers.X-Api"),
        (minimal(retry={"statuses": [500, "${STATUS}"]}), "STATUS", "retry.statuses[1]"),
    ],
)
def test_unset_variable_without_default_names_var_and_key(
    raw: dict[str, Any], var: str, key: str
) -> None:
    error = config_error(raw)
    assert error.key == key
    assert var in error.detail


def test_empty_variable_takes_the_default() -> None:
    raw = minimal(output={"path": "${OUT:-default.jsonl}"})
    assert parse_config(raw, environ={"OUT": ""}).output.path == "default.jsonl"


@pytest.mark.parametrize(
    ("section", "name", "text", "env", "expected"),
    [
        ("concurrency", "workers", "${W:-16}", {}, 16),
        ("concurrency", "workers", "${W:-16}", {"W": "4"}, 4),
        ("source", "timeout", "${T}", {"T": "2.5"}, 2.5),
        ("retry", "max_backoff", "${MAX:-60}", {}, 60.0),
        ("pagination", "start", "${START}", {"START": "200"}, 200),
    ],
)
def test_numbers_from_the_environment_fill_number_fields(
    section: str, name: str, text: str, env: dict[str, str], expected: float
) -> None:
    config = parse_config(minimal(**{section: {name: text}}), environ=env)
    value = getattr(getattr(config, section), name)
    assert value == expected
    assert type(value) is type(expected)


def test_statuses_from_the_environment_are_numbers() -> None:
    config = parse_config(minimal(retry={"statuses": ["${S:-503}", 429]}), environ={})
    assert config.retry.statuses == (503, 429)


@pytest.mark.parametrize(
    ("section", "name", "env"),
    [
        ("concurrency", "workers", {"W": "many"}),
        ("concurrency", "workers", {"W": "1.5"}),
        ("source", "timeout", {"W": "soon"}),
    ],
)
def test_non_number_from_the_environment_names_the_key(
    section: str, name: str, env: dict[str, str]
) -> None:
    error = config_error(minimal(**{section: {name: "${W}"}}), environ=env)
    assert error.key == f"{section}.{name}"
    assert env["W"] in error.detail


def test_number_as_plain_string_is_not_a_number() -> None:
    # Only an expanded variable may turn text into a number; a quoted "16" is a typo.
    assert config_error(minimal(concurrency={"workers": "16"})).key == "concurrency.workers"


# --- unknown keys and wrong types -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key", "suggestion"),
    [
        (minimal(pagination={"page_sise": 10}), "pagination.page_sise", "page_size"),
        (minimal(retry={"max_atempts": 3}), "retry.max_atempts", "max_attempts"),
        ({**minimal(), "concurency": {}}, "concurency", "concurrency"),
        (minimal(auth={"client_secrt": "x"}), "auth.client_secrt", "client_secret"),
    ],
)
def test_unknown_key_names_its_path_and_the_nearest_key(
    raw: dict[str, Any], key: str, suggestion: str
) -> None:
    error = config_error(raw)
    assert error.key == key
    assert suggestion in error.detail


def test_unknown_key_with_nothing_close_has_no_suggestion() -> None:
    error = config_error(minimal(source={"zzzzzz": 1}))
    assert error.key == "source.zzzzzz"
    assert "did you mean" not in error.detail


@pytest.mark.parametrize(
    ("section", "name", "value", "key"),
    [
        ("concurrency", "workers", "many", "concurrency.workers"),
        ("concurrency", "workers", True, "concurrency.workers"),
        ("concurrency", "workers", 1.5, "concurrency.workers"),
        ("concurrency", "workers", None, "concurrency.workers"),
        ("retry", "statuses", 5, "retry.statuses"),
        ("retry", "statuses", [500, "503x"], "retry.statuses[1]"),
        ("retry", "statuses", [500, True], "retry.statuses[1]"),
        ("source", "params", [1], "source.params"),
        ("source", "headers", {"X-List": [1]}, "source.headers.X-List"),
        ("source", "url", 5, "source.url"),
        ("source", "records", ["items"], "source.records"),
        ("pagination", "style", "scroll", "pagination.style"),
        ("auth", "auth_method", "digest", "auth.auth_method"),
        ("auth", "type", "basic", "auth.type"),
    ],
)
def test_wrong_type_names_the_key_path(section: str, name: str, value: Any, key: str) -> None:
    assert config_error(minimal(**{section: {name: value}})).key == key


@pytest.mark.parametrize("section", ["source", "pagination", "retry"])
def test_section_that_is_not_a_mapping_names_the_section(section: str) -> None:
    assert config_error(minimal(**{section: [1, 2]})).key == section


# --- bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("pagination", {"page_size": 0}, "pagination.page_size"),
        ("pagination", {"start": -1}, "pagination.start"),
        ("pagination", {"offset_param": ""}, "pagination.offset_param"),
        ("pagination", {"limit_param": ""}, "pagination.limit_param"),
        ("pagination", {"style": "range", "range_unit": ""}, "pagination.range_unit"),
        ("concurrency", {"workers": 0}, "concurrency.workers"),
        ("concurrency", {"workers": 1001}, "concurrency.workers"),
        ("concurrency", {"max_buffered_pages": 0}, "concurrency.max_buffered_pages"),
        ("retry", {"max_attempts": 0}, "retry.max_attempts"),
        ("retry", {"initial_backoff": -0.5}, "retry.initial_backoff"),
        ("retry", {"max_backoff": -1}, "retry.max_backoff"),
        ("retry", {"max_retry_after": -1}, "retry.max_retry_after"),
        ("retry", {"statuses": [500, 700]}, "retry.statuses[1]"),
        ("retry", {"statuses": [99]}, "retry.statuses[0]"),
        ("retry", {"statuses": [500, 401]}, "retry.statuses"),
        ("source", {"url": "ftp://example.com/items"}, "source.url"),
        ("source", {"url": "example.com/items"}, "source.url"),
        ("source", {"url": "http:///items"}, "source.url"),
        ("source", {"timeout": 0}, "source.timeout"),
        ("source", {"connect_timeout": -1}, "source.connect_timeout"),
        ("source", {"read_timeout": 0}, "source.read_timeout"),
        ("source", {"max_body_bytes": 0}, "source.max_body_bytes"),
        ("source", {"max_body_bytes": "lots"}, "source.max_body_bytes"),
        ("source", {"max_compression_ratio": 0}, "source.max_compression_ratio"),
        ("source", {"allow_private_hosts": "maybe"}, "source.allow_private_hosts"),
        ("output", {"path": "   "}, "output.path"),
        ("auth", {**CLIENT_CREDENTIALS, "token_url": "file:///token"}, "auth.token_url"),
        ("auth", {**CLIENT_CREDENTIALS, "refresh_margin": -1}, "auth.refresh_margin"),
    ],
)
def test_bad_value_names_the_key_path(section: str, values: dict[str, Any], key: str) -> None:
    error = config_error(minimal(**{section: values}))
    assert error.key == key
    assert error.exit_code == 2


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"output": {"path": "x"}}, "source"),
        ({"source": {"url": "http://h/x"}}, "output"),
        ({"source": {}, "output": {"path": "x"}}, "source.url"),
        ({"source": {"url": "http://h/x"}, "output": {}}, "output.path"),
    ],
)
def test_missing_required_key_is_required(raw: dict[str, Any], key: str) -> None:
    error = config_error(raw)
    assert error.key == key
    assert error.detail == "is required"


@pytest.mark.parametrize("name", ["token_url", "client_id", "client_secret"])
def test_client_credentials_needs_its_three_keys(name: str) -> None:
    auth = {k: v for k, v in CLIENT_CREDENTIALS.items() if k != name}
    assert config_error(minimal(auth=auth)).key == f"auth.{name}"


@pytest.mark.parametrize("name", ["token_url", "client_id", "client_secret"])
def test_client_credentials_key_may_not_be_null(name: str) -> None:
    assert config_error(minimal(auth={**CLIENT_CREDENTIALS, name: None})).key == f"auth.{name}"


def test_client_credentials_secret_may_not_be_empty() -> None:
    error = config_error(minimal(auth={**CLIENT_CREDENTIALS, "client_secret": ""}))
    assert error.key == "auth.client_secret"


@pytest.mark.parametrize("token", [None, ""])
def test_bearer_needs_a_token(token: str | None) -> None:
    assert config_error(minimal(auth={"type": "bearer", "token": token})).key == "auth.token"


def test_bearer_token_is_a_secret() -> None:
    config = parse_config(minimal(auth={"type": "bearer", "token": TOKEN}), environ={})
    assert config.auth.token == Secret(TOKEN)
    assert config.secrets() == [TOKEN]


def test_content_range_total_needs_range_style() -> None:
    error = config_error(minimal(pagination={"style": "offset", "total": "content-range"}))
    assert error.key == "pagination.total"


@pytest.mark.parametrize("total", ["total", "body:", "header:", "json:total", "content_range"])
def test_malformed_total_spec_names_the_key(total: str) -> None:
    assert config_error(minimal(pagination={"total": total})).key == "pagination.total"


@pytest.mark.parametrize(
    ("raw", "environ", "key"),
    [
        (minimal(source={"timeout": float("nan")}), {}, "source.timeout"),
        (minimal(retry={"max_backoff": "${B}"}), {"B": "nan"}, "retry.max_backoff"),
    ],
)
def test_nan_is_not_a_number(raw: dict[str, Any], environ: dict[str, str], key: str) -> None:
    assert config_error(raw, environ=environ).key == key


# --- files --------------------------------------------------------------------------------


def test_malformed_yaml_points_at_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("source:\n  url: http://h/x\noutput: path: x\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.source == f"{path}:3:13"
    assert info.value.key is None
    assert info.value.exit_code == 2


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.source == str(path)
    assert info.value.key is None


@pytest.mark.parametrize("text", ["- source\n- output\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.source == str(path)
    assert info.value.key is None


def test_empty_file_asks_for_source(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert (info.value.source, info.value.key, info.value.detail) == (
        str(path),
        "source",
        "is required",
    )


def test_file_error_carries_file_and_key(contract_file: Path) -> None:
    contract_file.write_text(
        CONTRACT_YAML.replace("page_size: 100", "page_sise: 100"), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_config(contract_file, environ={})
    error = info.value
    assert (error.source, error.key) == (str(contract_file), "pagination.page_sise")
    assert "page_size" in error.detail
    assert str(error).startswith(f"{contract_file}: pagination.page_sise: ")


def test_missing_variable_in_file_carries_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "source: {url: 'http://${API_HOST}/items'}\noutput: {path: x}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert (info.value.source, info.value.key) == (str(path), "source.url")
    assert "API_HOST" in info.value.detail


# --- overrides ----------------------------------------------------------------------------


def test_overrides_apply(contract_file: Path) -> None:
    overrides = {"concurrency.workers": 4, "output.path": "x.jsonl"}
    config = load_config(contract_file, overrides=overrides, environ={})
    assert config.concurrency.workers == 4
    assert config.output.path == "x.jsonl"
    assert config.concurrency.max_buffered_pages == 64


def test_override_may_create_a_section() -> None:
    config = parse_config(minimal(), overrides={"retry.max_attempts": 3}, environ={})
    assert config.retry.max_attempts == 3


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"concurrency.workers": 0}, "concurrency.workers"),
        ({"concurrency.workers": "many"}, "concurrency.workers"),
        ({"output.path": ""}, "output.path"),
        ({"concurrency.wrokers": 4}, "concurrency.wrokers"),
    ],
)
def test_overrides_are_validated(contract_file: Path, overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(contract_file, overrides=overrides, environ={})
    assert (info.value.source, info.value.key) == (str(contract_file), key)


@pytest.mark.parametrize(
    ("raw", "overrides", "key"),
    [
        (minimal(concurrency=None), {"concurrency.workers": 4}, None),
        (minimal(), {"output.path.name": "x"}, "output.path"),
    ],
)
def test_override_into_null_or_scalar_section(
    raw: dict[str, Any], overrides: dict[str, Any], key: str | None
) -> None:
    # An empty `concurrency:` section is valid on its own; --workers must still apply to it.
    if key is None:
        config = parse_config(raw, overrides=overrides, environ={})
        assert config.concurrency.workers == 4
    else:
        assert config_error(raw, overrides=overrides).key == key


# --- secrets ------------------------------------------------------------------------------


def test_client_secret_never_shows(contract_file: Path) -> None:
    config = load_config(contract_file, environ={"HARVESTER_CLIENT_SECRET": SECRET})
    for text in (repr(config), str(config), repr(config.auth), str(config.auth.client_secret)):
        assert SECRET not in text
    assert config.auth.client_secret is not None
    assert config.auth.client_secret.reveal() == SECRET
    assert config.secrets() == [SECRET]


def test_bearer_token_never_shows() -> None:
    config = parse_config(
        minimal(auth={"type": "bearer", "token": "${TOKEN}"}), environ={"TOKEN": TOKEN}
    )
    for text in (repr(config), str(config), repr(config.auth), f"{config.auth.token}"):
        assert TOKEN not in text
    assert config.secrets() == [TOKEN]


def test_secrets_lists_secret_and_token() -> None:
    auth = {**CLIENT_CREDENTIALS, "token": TOKEN}
    assert parse_config(minimal(auth=auth), environ={}).secrets() == [SECRET, TOKEN]


def test_secret_error_does_not_show_the_secret() -> None:
    auth = {**CLIENT_CREDENTIALS, "token_url": "ftp://h/token"}
    error = config_error(minimal(auth=auth))
    assert SECRET not in str(error)


def test_config_error_is_a_usage_error() -> None:
    assert ConfigError.exit_code == 2
    assert isinstance(parse_config(minimal(), environ={}), Config)


def test_masked_shows_every_secret_as_stars_and_the_rest_as_is() -> None:
    raw = minimal(
        source={
            "url": "https://bob:pw-XYZ@api.test/items?api_key=k3y-XYZ&x=1",
            "headers": {"X-Api-Key": "hdr-XYZ", "Accept-Language": "en"},
            "params": {"access_token": "prm-XYZ", "fields": "id"},
        },
        auth={**CLIENT_CREDENTIALS, "token_url": "https://auth.test/token", "scope": "read"},
    )
    raw["auth"]["extra_params"] = {"client_assertion": "jwt-XYZ", "audience": "api"}
    masked = parse_config(raw, overrides={"concurrency.workers": 3}, environ={}).masked()
    assert "XYZ" not in repr(masked)
    assert masked["source"]["url"] == "https://***@api.test/items?api_key=***&x=1"
    assert masked["source"]["headers"] == {"X-Api-Key": "***", "Accept-Language": "en"}
    assert masked["source"]["params"] == {"access_token": "***", "fields": "id"}
    assert masked["auth"]["client_secret"] == "***"
    assert masked["auth"]["extra_params"] == {"client_assertion": "***", "audience": "api"}
    assert (masked["auth"]["client_id"], masked["auth"]["scope"]) == ("demo", "read")
    assert masked["concurrency"]["workers"] == 3  # overrides and defaults are in
    assert masked["retry"]["statuses"] == [408, 429, 500, 502, 503, 504]
    assert masked["tls"] == {"verify": True, "ca_bundle": None} | {
        key: None for key in ("client_cert", "client_key", "client_key_password")
    }
    assert list(masked) == [f.name for f in dataclasses.fields(Config)]


def test_masked_hides_a_secret_repeated_outside_its_key() -> None:
    auth = {**CLIENT_CREDENTIALS, "token_url": f"https://auth.test/{SECRET}/token"}
    masked = parse_config(minimal(auth=auth), environ={}).masked()
    assert masked["auth"]["token_url"] == "https://auth.test/***/token"


def test_section_reprs_hide_secret_headers_and_parameters() -> None:
    source = {"headers": {"Authorization": f"Bearer {TOKEN}"}, "params": {"api_key": "k3y-XYZ"}}
    config = parse_config(minimal(source=source, auth=CLIENT_CREDENTIALS), environ={})
    for text in (repr(config), repr(config.source), repr(config.auth)):
        assert TOKEN not in text and "k3y-XYZ" not in text and SECRET not in text
    assert repr(config.source).startswith("SourceConfig(url='http://127.0.0.1:8765/items', ")
    assert "'Authorization': '***'" in repr(config.source)


# --- tls ----------------------------------------------------------------------------------------


def test_tls_defaults_verify_with_the_system_cas() -> None:
    tls = parse_config(minimal(), environ={}).tls
    assert (tls.verify, tls.ca_bundle) == (True, None)
    context = tls.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_tls_verify_false_checks_nothing_and_says_so() -> None:
    config = parse_config(minimal(tls={"verify": False}), environ={})
    context = config.tls.ssl_context()
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    (warning,) = config.warnings()
    assert "tls.verify is false" in warning and "not checked" in warning


def test_tls_ca_bundle_loads_a_pem_ca(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    tls = parse_config(minimal(tls={"ca_bundle": str(ca_file)}), environ={}).tls
    assert tls.ssl_context().cert_store_stats()["x509_ca"] == 1  # that CA, and only that one


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda folder: folder / "missing.pem", "cannot read"),
        (lambda folder: folder, "cannot read"),
        (lambda folder: _write(folder / "junk.pem", "not a certificate\n"), "no PEM certificate"),
        (lambda folder: _write(folder / "empty.pem", ""), "no PEM certificate"),
    ],
)
def test_a_bad_ca_bundle_names_the_key_and_the_file(
    tmp_path: Path, make: Callable[[Path], Path], needle: str
) -> None:
    path = make(tmp_path)
    error = config_error(minimal(tls={"ca_bundle": str(path)}))
    assert error.key == "tls.ca_bundle"
    assert needle in error.detail and str(path) in error.detail


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("tls", "needle"),
    [
        ({"verify": False, "ca_bundle": "ca.pem"}, "tls.verify: false"),
        ({"ca_bundle": " "}, "must not be empty"),
        ({"ca_bundle": "ca\x00.pem"}, "is not a file name"),  # found by test_config_schema
    ],
)
def test_ca_bundle_needs_verification_and_a_name(tls: dict[str, Any], needle: str) -> None:
    error = config_error(minimal(tls=tls))
    assert error.key == "tls.ca_bundle" and needle in error.detail


def test_tls_verify_must_be_a_boolean() -> None:
    assert config_error(minimal(tls={"verify": "no"})).key == "tls.verify"


# --- secrets over plain http --------------------------------------------------------------------


BEARER = {"type": "bearer", "token": TOKEN}


@pytest.mark.parametrize(
    ("sections", "key", "what"),
    [
        (
            {"auth": {**CLIENT_CREDENTIALS, "token_url": "http://auth.test/t"}},
            "auth.token_url",
            "client secret",
        ),
        (
            {"auth": {**CLIENT_CREDENTIALS, "token_url": "http://10.0.0.5/t"}},
            "auth.token_url",
            "client secret",
        ),
        (
            {
                "auth": {
                    **CLIENT_CREDENTIALS,
                    "token_url": "http://auth.test/t",
                    "auth_method": "client_secret_jwt",
                }
            },
            "auth.token_url",
            "signed client assertion",
        ),
        ({"source": {"url": "http://api.test/x"}, "auth": BEARER}, "source.url", "access token"),
        (
            {"source": {"url": "http://api.test/x"}, "auth": CLIENT_CREDENTIALS},
            "source.url",
            "access token",
        ),
        (
            {"source": {"url": "http://api.test/x", "headers": {"X-Api-Key": "k"}}},
            "source.url",
            "secret header",
        ),
        ({"source": {"url": "http://api.test/x?api_key=k"}}, "source.url", "secret header"),
    ],
)
def test_a_secret_over_plain_http_to_another_host_needs_allow_insecure_http(
    sections: dict[str, Any], key: str, what: str
) -> None:
    error = config_error(minimal(**sections))
    assert error.key == key
    assert what in error.detail and "auth.allow_insecure_http: true" in error.detail
    auth = {**sections.get("auth", {"type": "none"}), "allow_insecure_http": True}
    config = parse_config(minimal(**{**sections, "auth": auth}), environ={})
    assert any(key in w and what in w for w in config.warnings())


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.9.8.7", "localhost", "LOCALHOST", "[::1]", "localhost."]
)
def test_plain_http_to_loopback_is_fine(host: str) -> None:
    auth = {**CLIENT_CREDENTIALS, "token_url": f"http://{host}:9/token"}
    config = parse_config(minimal(source={"url": f"http://{host}:9/x"}, auth=auth), environ={})
    assert config.warnings() == []


def test_https_or_no_secret_needs_no_allowance() -> None:
    auth = {**CLIENT_CREDENTIALS, "token_url": "https://auth.test/t"}
    assert parse_config(minimal(source={"url": "https://api.test/x"}, auth=auth), environ={})
    assert parse_config(minimal(source={"url": "http://api.test/x?page=1"}), environ={})


def test_allow_insecure_http_says_nothing_when_unused() -> None:
    auth = {**CLIENT_CREDENTIALS, "allow_insecure_http": True}
    assert parse_config(minimal(auth=auth), environ={}).warnings() == []


@pytest.mark.parametrize(
    ("key", "value"), [("include_from_parent", ["id"]), ("on_missing", "skip")]
)
def test_a_child_resources_keys_need_a_parent(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: applies only to a resource with a parent"):
        parse_config({**minimal(), key: value}, environ={})


@pytest.mark.parametrize(
    ("key", "value"), [("include_from_parent", ["id"]), ("on_missing", "skip")]
)
def test_a_child_key_without_a_parent_is_refused(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: applies only to a resource with a parent"):
        parse_config({**minimal(), key: value}, environ={})


def test_a_nul_in_the_output_path_is_a_config_error() -> None:
    # A NUL cannot be in a file name: found by tests/test_config_schema.py's property.
    error = config_error(minimal(output={"path": "out\x00.jsonl"}))
    assert error.key == "output.path" and "is not a file name" in error.detail
