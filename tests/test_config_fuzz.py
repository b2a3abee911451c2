"""Fuzzing the config loader: arbitrary YAML (wrong types, huge numbers, nested junk, unknown
keys, bad ${VAR}s) through load_config and through the command line, in process.

Whatever the document, the loader returns a Config or raises ConfigError naming the key path,
and the CLI exits 0 (--print-config of a valid config) or 2 with one line naming that key path:
never a traceback, never another exception.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import io
import os
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harvester import cli
from harvester.config import Config, load_config
from harvester.errors import ConfigError

EXAMPLES = int(os.environ.get("HARVESTER_FUZZ_EXAMPLES", "1000"))
ENVIRON = {"FUZZ_SET": "value", "FUZZ_NUMBER": "12", "FUZZ_EMPTY": ""}

BASE: dict[str, Any] = {
    "source": {"url": "https://api.example.com/items", "records": "items"},
    "auth": {
        "type": "client_credentials",
        "token_url": "https://api.example.com/oauth2/token",
        "client_id": "demo",
        "client_secret": "s3cr3t-FUZZ-value",
    },
    "pagination": {"style": "offset", "page_size": 50},
    "output": {"path": "out/items.jsonl"},
}


def _dotted_keys(cls: type[Any], prefix: str = "") -> Iterator[str]:
    """Every key of the config schema, sections included, as dotted paths."""
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        yield key
        tp = hints[field.name]
        if get_origin(tp) in (Union, types.UnionType):
            tp = next((t for t in get_args(tp) if t is not type(None)), tp)
        if dataclasses.is_dataclass(tp):
            yield from _dotted_keys(tp, f"{key}.")  # type: ignore[arg-type]


KEYS = sorted(_dotted_keys(Config))
VAR_TEXTS = [
    "${FUZZ_UNSET_VARIABLE}",
    "${FUZZ_SET}",
    "${FUZZ_NUMBER}",
    "${FUZZ_EMPTY}",
    "${FUZZ_UNSET_VARIABLE:-}",
    "${FUZZ_UNSET_VARIABLE:-7}",
    "${",
    "${}",
    "${1BAD}",
    "${FUZZ_SET",
    "https://${FUZZ_UNSET_VARIABLE}/items",
    "prefix-${FUZZ_SET}-${FUZZ_UNSET_VARIABLE}",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),
    st.integers(max_value=-(10**18)),
    st.floats(),  # nan and the infinities too
    st.text(max_size=12),
    st.sampled_from(VAR_TEXTS),
    st.sampled_from(["offset", "cursor", "none", "bearer", "-", ".", "", " ", "0", "true"]),
    st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
    st.dates(),
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(KEYS) | st.integers(), inner, max_size=3
        )
    ),
    max_leaves=8,
)
paths = st.sampled_from(KEYS) | st.lists(
    st.sampled_from([*KEYS, "bogus", "sourse", "x"]), min_size=1, max_size=3
).map(".".join)


def _put(document: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `dotted` in `document`, turning whatever is in the way into a mapping."""
    node = document
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A valid config with one to three keys set to junk, or junk alone."""
    if draw(st.integers(0, 9)) == 0:
        return draw(junk)
    document = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        _put(document, draw(paths), draw(junk))
    return document


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def _check(text: str, folder: Path, *, is_mapping: bool) -> None:
    """The loader returns a Config or raises ConfigError with a key path (where the document is
    a mapping); the CLI prints a valid config, and refuses any other in one line, exit 2."""
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        error: ConfigError | None = exc
    else:
        error = None
    if error is not None and is_mapping:
        assert error.key is not None, f"no key path in {error}"
    # A valid config is printed; a rejected one is refused by a real run before any request.
    argv = ["--print-config"] if error is None else ["--progress", "none"]
    with _captured() as (out, err):
        code = cli.main([str(path), *argv])
    lines = err.getvalue().splitlines()
    assert "Traceback" not in err.getvalue()
    if error is None:
        assert code == 0 and lines == [], err.getvalue()
        return
    assert code == 2 and len(lines) == 1 and out.getvalue() == "", err.getvalue()
    assert " ERROR " in lines[0]
    if error.key is not None:
        assert error.key in lines[0]


def _is_mapping(text: str) -> bool:
    """Whether `text` is a YAML mapping (or empty): a document whose errors have a key path."""
    try:
        return isinstance(yaml.safe_load(text), dict | None)
    except (yaml.YAMLError, ValueError, RecursionError):
        return False


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every example's config, removed with pytest's other temporary folders
    (module scope: hypothesis reuses it across examples, which a function-scoped one forbids)."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def _environment() -> Iterator[None]:
    """ENVIRON in os.environ, where both the loader and the CLI read it."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENVIRON.items():
            patch.setenv(name, value)
        patch.delenv("FUZZ_UNSET_VARIABLE", raising=False)
        yield


@pytest.mark.usefixtures("harvester_logging")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(documents())
@example({"source": {"url": "https://api.example.com/x", "records": "r"}, "output": {"path": []}})
@example({**BASE, "concurrency": {"workers": 10**400}})
@example({**BASE, "output": {"path": "${FUZZ_UNSET_VARIABLE}"}})
def test_any_yaml_document_is_loaded_or_refused_with_its_key_path(
    folder: Path, document: Any
) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    _check(text, folder, is_mapping=isinstance(document, dict | None))


@pytest.mark.usefixtures("harvester_logging")
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("a:{}[]-&*!|>'\"#%@`, \n\t?$0.~")), max_size=40))
@example("!!python/object:os.system {}")
@example("a: &x [*x]")
@example("? [a]\n: 1")
@example("a: " + "1" * 5000)
@example("a: 2026-13-45")
@example(
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
)
def test_any_text_is_loaded_or_refused_in_one_line(folder: Path, text: str) -> None:
    _check(text, folder, is_mapping=_is_mapping(text))


# What the fuzzing found, each as a plain test.


def _refusal(text: str, folder: Path) -> ConfigError:
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(str(caught.value).splitlines()) == 1
    return caught.value


BASE_TEXT = yaml.safe_dump(BASE)


def test_an_alias_that_holds_itself_is_refused(tmp_path: Path) -> None:
    error = _refusal(BASE_TEXT + "retry: {statuses: &s [500, *s]}\n", tmp_path)
    assert error.key is not None and error.key.startswith("retry.statuses[1]")
    assert "nests deeper than 32 levels" in str(error)


def test_aliases_that_multiply_are_refused_without_walking_them(tmp_path: Path) -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )  # 10**9 values once expanded
    error = _refusal(laughs, tmp_path)
    assert "holds over 100,000 values" in str(error)


@pytest.mark.parametrize(
    "text", ["[" * 1000 + "]" * 1000, "a: " + "{b: " * 2000 + "1" + "}" * 2000]
)
def test_deep_nesting_is_refused(tmp_path: Path, text: str) -> None:
    assert "nests deeper than" in str(_refusal(text, tmp_path))


def test_a_number_beyond_64_bits_is_refused_with_its_key(tmp_path: Path) -> None:
    error = _refusal(
        BASE_TEXT.replace("records: items", f"records: items\n  timeout: {10**40}"), tmp_path
    )
    assert error.key == "source.timeout" and "is too large" in str(error)


@pytest.mark.parametrize(
    "value, problem",
    [("1" * 5000, "Exceeds the limit (4300 digits)"), ("2026-13-45", "month must be in 1..12")],
)
def test_a_value_yaml_cannot_build_is_malformed_yaml(
    tmp_path: Path, value: str, problem: str
) -> None:
    error = _refusal(f"source: {{url: {value}}}\n", tmp_path)
    assert f"malformed YAML: {problem}" in str(error) and "set_int_max_str_digits" not in str(error)


def test_a_control_character_in_a_key_is_shown_escaped_on_one_line(tmp_path: Path) -> None:
    error = _refusal(BASE_TEXT + '"bad\\x1ekey\\nname": 1\n', tmp_path)
    assert "bad\\x1ekey\\nname: unknown key" in str(error)
