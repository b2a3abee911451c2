"""The JSON Schema editors check configs with (`harvester schema`) agrees with the loader.

It admits every document the loader admits (hypothesis, through the config fuzzer's documents),
every config in the repository, and refuses the typical mistakes the loader refuses, at the
same key. Every key it shows has a description, written once under its field in schema.py.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import jsonschema
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harvester import cli
from harvester.config import Config, PaginationConfig, Secret, parse_config
from harvester.config.json_schema import (
    RESOURCE_KEYS,
    SHARED_SECTIONS,
    config_schema,
    field_docs,
)
from harvester.errors import ConfigError
from harvester.schema_command import schema_text
from tests.test_config_fuzz import BASE, ENVIRON, EXAMPLES, documents

ROOT = Path(__file__).parent.parent
SCHEMA = config_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
# The single-endpoint shape alone: its errors point at a key, as the loader's do.
SINGLE = jsonschema.Draft202012Validator({**SCHEMA, "anyOf": [SCHEMA["anyOf"][0]]})
SEVERAL = jsonschema.Draft202012Validator({**SCHEMA, "anyOf": [SCHEMA["anyOf"][1]]})
MODELINE = "# yaml-language-server: $schema="


def as_an_editor_reads(value: Any) -> Any:
    """The document as JSON sees it: YAML 1.2 (editors) reads an unquoted timestamp as text,
    and every mapping key is text."""
    if isinstance(value, dict):
        return {str(k): as_an_editor_reads(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_an_editor_reads(v) for v in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def repository_configs() -> Iterator[Path]:
    """config.yaml, the examples, and any YAML config the tests keep."""
    yield ROOT / "config.yaml"
    yield from sorted((ROOT / "examples").glob("*.yaml"))
    yield from sorted((ROOT / "tests").rglob("*.yaml"))


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", list(repository_configs()), ids=lambda p: p.name)
def test_every_config_in_the_repository_validates_and_names_the_schema(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    VALIDATOR.validate(as_an_editor_reads(yaml.safe_load(text)))
    relative = "../" if path.parent.name == "examples" else "./"
    expected = f"{MODELINE}{relative}harvester.schema.json"
    if path.parent.name != "tests":
        assert text.splitlines()[0] == expected, f"{path.name}: put `{expected}` on its first line"


def test_the_schema_file_in_the_repository_is_up_to_date() -> None:
    written = (ROOT / "harvester.schema.json").read_bytes()
    assert written == schema_text(), "run: harvester schema -o harvester.schema.json"


def _sections(cls: type[Any]) -> Iterator[type[Any]]:
    yield cls
    for tp in get_type_hints(cls).values():
        for inner in (tp, *get_args(tp)):
            if dataclasses.is_dataclass(inner):
                yield from _sections(inner)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", sorted(set(_sections(Config)), key=lambda c: c.__name__))
def test_every_key_is_described_once_under_its_field(cls: type[Any]) -> None:
    documented = field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in documented]
    assert not missing, f"{cls.__name__}: write a docstring under {missing}"


def test_descriptions_defaults_and_choices_come_from_the_declaration() -> None:
    pagination = SCHEMA["$defs"]["PaginationConfig"]["properties"]
    assert pagination["page_size"]["default"] == 100
    assert pagination["style"]["anyOf"][0]["enum"] == ["offset", "range", "page", "cursor", "link"]
    assert pagination["style"]["description"] == field_docs(PaginationConfig)["style"]
    retry = SCHEMA["$defs"]["RetryConfig"]["properties"]
    assert retry["statuses"]["default"] == [408, 429, 500, 502, 503, 504]
    assert SCHEMA["$defs"]["SourceConfig"]["required"] == ["url"]
    sections = [d for name, d in SCHEMA["$defs"].items() if name != "FromEnvironment"]
    assert all(d["additionalProperties"] is False for d in sections)


VALID_SEVERAL: dict[str, Any] = {
    "defaults": {
        "auth": BASE["auth"],
        "concurrency": {"workers": "${WORKERS:-16}"},
        "pagination": {"page_size": 50},
    },
    "resources": [
        {
            "name": "users",
            "source": {"url": "https://api.example.com/users", "records": "items"},
            "output": {"path": "out/users.jsonl"},
        },
        {
            "name": "orders",
            "parent": "users",
            "source": {"url": "https://api.example.com/users/{users.id}/orders"},
            "include_from_parent": ["id"],
            "on_missing": "skip",
            "incremental": {"field": "updated_at", "initial": "2024-01-01T00:00:00Z"},
            "output": {"path": "out/orders"},
        },
    ],
}


def test_a_several_resources_document_validates() -> None:
    VALIDATOR.validate(VALID_SEVERAL)
    # source and output may come from defaults (merged before the resource is checked).
    VALIDATOR.validate({"defaults": {"output": {"path": "x"}}, "resources": [{"name": "a"}]})


def test_numbers_booleans_and_choices_may_come_from_the_environment() -> None:
    document = copy.deepcopy(BASE)
    document["concurrency"] = {"workers": "${WORKERS:-16}", "adaptive": "${ADAPTIVE}"}
    document["retry"] = {"statuses": ["${RETRY_STATUS}"], "max_backoff": "${BACKOFF:-60}"}
    document["pagination"] = {"style": "${STYLE:-offset}"}
    VALIDATOR.validate(document)
    parse_config(document, environ={"ADAPTIVE": "false", "RETRY_STATUS": "503"})
    document["concurrency"]["workers"] = "sixteen"  # text without a variable: wrong
    assert not VALIDATOR.is_valid(document)


def _with(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    document = copy.deepcopy(BASE if base is None else base)
    node: Any = document
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[last] = value
    return document


# (the document, the key the loader names, where the schema's error points)
SINGLE_MISTAKES = [
    (_with("sourse", {}), "sourse", ""),
    (_with("pagination.page_sise", 10), "pagination.page_sise", "pagination"),
    (_with("concurrency.workers", "many"), "concurrency.workers", "concurrency.workers"),
    (_with("concurrency.adaptive", "yes"), "concurrency.adaptive", "concurrency.adaptive"),
    (_with("pagination.style", "offest"), "pagination.style", "pagination.style"),
    (_with("output.format", "xml"), "output.format", "output.format"),
    (_with("retry.statuses", 503), "retry.statuses", "retry.statuses"),
    (_with("retry.statuses", [503, "x"]), "retry.statuses[1]", "retry.statuses.1"),
    (_with("source.params", ["a"]), "source.params", "source.params"),
    (_with("source.url", 5), "source.url", "source.url"),
    (_with("pagination.page_size", 2.5), "pagination.page_size", "pagination.page_size"),
    (_with("output", {"format": "csv"}), "output.path", "output"),
    (_with("parent", "users"), "parent", "parent"),
]


@pytest.mark.parametrize(("document", "key", "at"), SINGLE_MISTAKES, ids=lambda v: str(v))
def test_typical_mistakes_are_refused_by_both_at_the_same_key(
    document: dict[str, Any], key: str, at: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, environ={})
    assert caught.value.key == key
    assert not VALIDATOR.is_valid(document)
    error = jsonschema.exceptions.best_match(SINGLE.iter_errors(document))
    assert error is not None
    assert ".".join(map(str, error.absolute_path)) == at


SEVERAL_MISTAKES = [
    # A resource may not set a shared section; defaults may not hold a resource's own keys.
    (_with("resources.0.auth", {"type": "none"}, VALID_SEVERAL), "resources.0"),
    (_with("resources.1.concurrency", {}, VALID_SEVERAL), "resources.1"),
    (_with("resources.0.tls", {}, VALID_SEVERAL), "resources.0"),
    (_with("defaults.name", "x", VALID_SEVERAL), "defaults"),
    (_with("defaults.parent", "x", VALID_SEVERAL), "defaults"),
    # Only defaults and resources at the top.
    (_with("source", {"url": "https://x.example"}, VALID_SEVERAL), ""),
    (_with("resources", [], VALID_SEVERAL), "resources"),
    (_with("resources.0.name", "two words", VALID_SEVERAL), "resources.0.name"),
    (_with("resources.0.output.pth", "x", VALID_SEVERAL), "resources.0.output"),
    (_with("resources.1.on_missing", "ignore", VALID_SEVERAL), "resources.1.on_missing"),
    (_with("resources.1.incremental.lookback", "1h", VALID_SEVERAL), "resources.1.incremental"),
]


@pytest.mark.parametrize(("document", "at"), SEVERAL_MISTAKES, ids=lambda v: str(v))
def test_several_resources_mistakes_are_refused_where_they_are(
    document: dict[str, Any], at: str
) -> None:
    assert not VALIDATOR.is_valid(document)
    error = jsonschema.exceptions.best_match(SEVERAL.iter_errors(document))
    assert error is not None
    assert ".".join(map(str, error.absolute_path)).startswith(at)
    assert not VALIDATOR.is_valid({"resources": [{"source": {}, "output": {}}]})  # no name


def _from_env(value: Any) -> str:
    return f"${{FUZZ_UNSET_VARIABLE:-{str(value).lower() if isinstance(value, bool) else value}}}"


def _values(tp: Any) -> st.SearchStrategy[Any]:
    """Values of the declared type `tp`, as a YAML document may write them (${VAR}s too)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return st.one_of([st.none() if t is type(None) else _values(t) for t in args])
    if dataclasses.is_dataclass(tp):
        return _sections_of(tp)  # type: ignore[arg-type]
    if origin is Literal:
        return st.sampled_from(args) | st.sampled_from(args).map(_from_env)
    if origin is dict:
        return st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.integers(), max_size=2)
    if origin is tuple:
        return st.lists(_values(args[0]), max_size=3)
    plain: dict[Any, st.SearchStrategy[Any]] = {
        bool: st.booleans(),
        int: st.integers(0, 2000) | st.sampled_from([1.0, 100.0]),
        float: st.floats(0.001, 1e6) | st.integers(1, 1000),
        str: st.text(max_size=12) | st.datetimes(timezones=st.just(datetime.UTC)),
        Secret: st.text(min_size=1, max_size=8) | st.integers(),
    }
    if tp in (bool, int, float):
        return plain[tp] | plain[tp].map(_from_env)
    return plain[tp]


def _sections_of(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    hints = get_type_hints(cls)
    return st.fixed_dictionaries(
        {}, optional={f.name: _values(hints[f.name]) for f in dataclasses.fields(cls)}
    )


@st.composite
def typed_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid config with a few sections' keys drawn from their declared types: most pass the
    types, fewer the checks across fields; those are what the property is about."""
    document = copy.deepcopy(BASE)
    hints = get_type_hints(Config)
    for name in draw(
        st.sets(
            st.sampled_from(
                ["pagination", "concurrency", "retry", "source", "output", "auth", "tls"]
            ),
            max_size=3,
        )
    ):
        drawn = draw(_sections_of(hints[name]))
        document[name] = {**document.get(name, {}), **drawn}
    return document


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(typed_documents() | documents())
def test_what_the_loader_accepts_the_schema_accepts(document: Any) -> None:
    if not isinstance(document, dict):
        return  # load_config refuses it before parse_config: not a mapping of sections
    try:
        parse_config(document, environ={**ENVIRON, "FUZZ_UNSET_VARIABLE": ""})
    except ConfigError:
        return
    assert VALIDATOR.is_valid(as_an_editor_reads(document)), list(
        VALIDATOR.iter_errors(as_an_editor_reads(document))
    )


def test_harvester_schema_prints_it_on_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert cli.main(["schema"]) == 0
    assert orjson.loads(capsysbinary.readouterr().out) == SCHEMA


def test_harvester_schema_writes_a_file(tmp_path: Path) -> None:
    target = tmp_path / "deeper" / "harvester.schema.json"
    assert cli.main(["schema", "-o", str(target)]) == 0
    assert target.read_bytes() == schema_text()


def test_harvester_schema_refuses_an_unknown_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["schema", "--bogus"])
    assert caught.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_the_real_command_prints_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harvester", "schema"], capture_output=True, check=False
    )
    assert done.returncode == 0 and done.stderr == b""
    assert orjson.loads(done.stdout)["title"] == "harvester config"


# The several-resources loader (harvester/config/resources.py) is built beside this schema; once
# it is in, these hold the two to one shape.
def _resource_loader() -> Any:
    return pytest.importorskip("harvester.config.resources", reason="no several-resources loader")


def test_the_schema_leaves_out_the_keys_the_resource_loader_refuses() -> None:
    resources = _resource_loader()
    assert tuple(resources.SHARED_SECTIONS) == SHARED_SECTIONS
    assert tuple(resources.RESOURCE_KEYS) == RESOURCE_KEYS


@st.composite
def several_documents(draw: st.DrawFn) -> dict[str, Any]:
    """defaults + resources, their sections drawn from the declared types (see typed_documents)."""
    defaults = {k: v for k, v in draw(typed_documents()).items() if k not in ("source", "output")}
    resources = []
    for i in range(draw(st.integers(1, 3))):
        resource = {k: v for k, v in draw(typed_documents()).items() if k not in SHARED_SECTIONS}
        resource["name"] = f"r{i}"
        resource["output"] = {**resource["output"], "path": f"out/r{i}.jsonl"}
        resources.append(resource)
    return {"defaults": defaults, "resources": resources}


@settings(
    max_examples=max(EXAMPLES // 4, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(several_documents())
def test_what_the_resource_loader_accepts_the_schema_accepts(document: dict[str, Any]) -> None:
    resources = _resource_loader()
    VALIDATOR.validate(as_an_editor_reads(VALID_SEVERAL))
    try:
        resources.parse_resources(document, environ={**ENVIRON, "FUZZ_UNSET_VARIABLE": ""})
    except ConfigError:
        return
    assert VALIDATOR.is_valid(as_an_editor_reads(document)), list(
        VALIDATOR.iter_errors(as_an_editor_reads(document))
    )
