"""Reading the config: YAML, ${VAR} expansion, relative paths, overrides, then build and check."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from harvester.config.checks import _check
from harvester.config.coerce import _build, _join, _set_dotted
from harvester.config.schema import Config
from harvester.errors import ConfigError
from harvester.secret_sources import is_pem

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(
    path: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    keep_unset: bool = False,
) -> Config:
    """Read, expand and validate the config file; `overrides` maps dotted keys to values.

    Relative paths in the file (output.path, the files of tls) are taken from the file's folder,
    so that a run does not depend on the folder it starts in (cron's is the home folder);
    those in `overrides` (the command line's) stay relative to the current folder. With
    `keep_unset` (--print-config), an unset ${VAR} stays as written where text is accepted.
    """
    source = str(path)
    raw = read_document(path)
    try:
        return parse_config(
            raw,
            overrides=overrides,
            environ=environ,
            base=Path(path).parent,
            keep_unset=keep_unset,
        )
    except ConfigError as exc:
        raise ConfigError(exc.detail, key=exc.key, source=source) from None


def read_document(path: str | Path) -> dict[str, Any]:
    """The config file's YAML document, a mapping (ConfigError naming the file otherwise)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", source=source) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "malformed YAML"
        raise ConfigError(f"malformed YAML: {problem}", source=where) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", source=source) from None
    except ValueError as exc:  # a date like 2026-13-45, an integer of thousands of digits
        problem = str(exc).split(";")[0]  # not Python's hint about sys.set_int_max_str_digits
        raise ConfigError(f"malformed YAML: {problem}", source=source) from None
    except RecursionError:  # PyYAML builds nested collections recursively
        raise ConfigError(f"nests deeper than {MAX_DEPTH} levels", source=source) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping of sections", source=source)
    return raw


def parse_config(
    raw: Mapping[str, Any],
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    base: Path | None = None,
    keep_unset: bool = False,
    resource: bool = False,
) -> Config:
    """Validate an already parsed mapping (the YAML document) into a Config; relative paths in
    it are taken from `base` (the config file's folder) if given. `resource`: the mapping is one
    resource of a resources: document (config/resources.py), which may name a parent."""
    env = os.environ if environ is None else environ
    _check_shape(raw)
    if "resources" in raw or "defaults" in raw:  # config/resources.py reads those
        raise ConfigError(
            "a document of several resources: run it with the command line (harvester "
            "CONFIG), or load it with harvester.config.resources.load_resources",
            key="resources" if "resources" in raw else "defaults",
        )
    if not resource and raw.get("parent") is not None:
        raise ConfigError(
            "needs a resources: document naming the parent (a config of one endpoint has none)",
            key="parent",
        )
    expanded: set[str] = set()
    unset: dict[str, str] | None = {} if keep_unset else None  # key -> a variable kept unset
    data = _expand(dict(raw), env, "", expanded, unset)
    if base is not None:
        _resolve_paths(data, base)
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    if "auth" not in data:
        data["auth"] = {"type": "none"}
    written: dict[str, str] = {}  # key -> its value as written, checked with a stand-in
    while True:
        try:
            config = _check(_build(Config, data, "", expanded))
        except ConfigError as exc:
            # --print-config: where a ${VAR} as written is not a valid value, check a stand-in
            # for it instead, and show it as written; a real run never gets here.
            if unset and exc.key in unset and _stand_in(data, exc.key, written):
                continue
            if unset and exc.key in unset:
                raise ConfigError(
                    f"environment variable {unset[exc.key]} is not set (and has no default)",
                    key=exc.key,
                ) from None
            raise
        object.__setattr__(config, "_as_written", written)  # for masked(): not a field
        return config


# Tried in turn for each unset variable of a value whose check fails with it as written.
_STAND_INS = ("1", "https://unset.invalid", "true")


def _stand_in(data: dict[str, Any], key: str, written: dict[str, str]) -> bool:
    """Put the next stand-in in place of the unset variables of the value at `key`; False when
    every stand-in was tried (or the value is not where a dotted key finds it)."""
    *parents, last = key.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or not isinstance(node.get(last), str):
        return False
    original = written.setdefault(key, node[last])
    tried = [_VAR.sub(stand_in, original) for stand_in in _STAND_INS]
    following = tried.index(node[last]) + 1 if node[last] in tried else 0
    if following == len(tried):
        return False
    node[last] = tried[following]
    return True


# No config nests this deep or holds this many values; YAML aliases can make a short document
# that does (one that holds itself, or the "billion laughs"), and walking it would never end.
MAX_DEPTH, MAX_VALUES = 32, 100_000


def _check_shape(raw: Any) -> None:
    """ConfigError if the document nests deeper than MAX_DEPTH or holds over MAX_VALUES values,
    counting each use of a YAML alias."""
    stack: list[tuple[Any, str, int]] = [(raw, "", 0)]
    count = 0
    while stack:
        value, key, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(
                f"holds over {MAX_VALUES:,} values (YAML aliases that multiply?)", key=key or None
            )
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"nests deeper than {MAX_DEPTH} levels (a YAML alias that holds itself?)",
                key=key or None,
            )
        if isinstance(value, dict):
            stack.extend((v, _join(key, str(k)), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{key}[{i}]", depth + 1) for i, v in enumerate(value))


PATH_KEYS = (
    ("output", "path"),
    ("tls", "ca_bundle"),
    ("tls", "client_cert"),
    ("tls", "client_key"),
    ("auth", "private_key"),
)


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    for section, key in PATH_KEYS:
        values = data.get(section)
        if not isinstance(values, dict):
            continue  # not a mapping: validation says so
        value = values.get(key)
        # "-" is stdout; /dev/stdout and other absolute paths stay as they are.
        # auth.private_key may be the PEM itself, from ${VAR}: not a path.
        if isinstance(value, str) and value.strip() and value != "-" and not is_pem(value):
            values[key] = str(base / value)  # an absolute value replaces base


def _expand(
    value: Any,
    env: Mapping[str, str],
    key: str,
    expanded: set[str],
    unset: dict[str, str] | None = None,
) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, env, _join(key, str(k)), expanded, unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{key}[{i}]", expanded, unset) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        expanded.add(key)

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if env.get(name):  # as in the shell, ${VAR:-default} also replaces an empty VAR
                return env[name]
            if name in env and default is None:
                return ""
            if default is not None:
                return default
            if unset is not None:
                unset[key] = name
                return match.group(0)
            raise ConfigError(
                f"environment variable {name} is not set (and has no default)", key=key
            )

        return _VAR.sub(substitute, value)
    return value
