"""The several-resources document: `defaults:` merged under each of `resources:`, one Config each.

    defaults:                  # any section; auth, tls and concurrency only here (shared)
      auth: {...}
    resources:
      - name: users
        source: {...}
        output: {...}
      - name: orders
        parent: users          # one request chain per users record: {users.id} in the URL
        ...

Each resource is validated as a single-endpoint config is (every check, every stage works per
resource), and an error names its key as `resources[1].source.url` (or `defaults.auth...` where
the value came from defaults). A document without `resources:` is a single-endpoint config, as
it always was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harvester.config.loading import parse_config, read_document
from harvester.config.schema import Config
from harvester.errors import ConfigError
from harvester.stream import is_stream

# One token manager, one rate budget and one worker budget serve every resource.
SHARED_SECTIONS = ("auth", "tls", "concurrency")
RESOURCE_KEYS = ("name", "parent", "include_from_parent", "on_missing", "incremental")
NAME = re.compile(r"[A-Za-z0-9_-]+")  # a resource's name (and the schema's pattern for it)
# {users.id}: a field of the parent's record, in a child's URL, params, headers and body.
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_-]+)\.([^{}]+)\}")


def load_resources(
    path: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    keep_unset: bool = False,
) -> list[Config]:
    """Every resource of the config file, validated; one Config (name None) for a
    single-endpoint document. ConfigError names the file and the key."""
    source = str(path)
    raw = read_document(path)
    try:
        return parse_resources(
            raw, overrides=overrides, environ=environ, base=Path(path).parent, keep_unset=keep_unset
        )
    except ConfigError as exc:
        raise ConfigError(exc.detail, key=exc.key, source=source) from None


def has_resources(raw: Mapping[str, Any]) -> bool:
    """Whether a parsed document is the several-resources kind."""
    return "resources" in raw or "defaults" in raw


def parse_resources(
    raw: Mapping[str, Any],
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    base: Path | None = None,
    keep_unset: bool = False,
) -> list[Config]:
    """parse_config for a document that may hold `defaults:` and `resources:`."""
    options: dict[str, Any] = {
        "overrides": overrides,
        "environ": environ,
        "base": base,
        "keep_unset": keep_unset,
    }
    if not has_resources(raw):
        return [parse_config(raw, **options)]
    for key in raw:
        if key not in ("defaults", "resources"):
            raise ConfigError(
                "a document with resources: holds only defaults: and resources: (put this "
                "section under defaults, or in a resource)",
                key=str(key),
            )
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError("must be a mapping of sections", key="defaults")
    for key in RESOURCE_KEYS:
        if key in defaults:
            raise ConfigError(
                "is a resource's own key: set it in the resource", key=f"defaults.{key}"
            )
    items = raw.get("resources")
    if not isinstance(items, list) or not items:
        raise ConfigError(
            "must be a list of resources (each with name, source, output)", key="resources"
        )
    configs = [_resource(i, item, defaults, options) for i, item in enumerate(items)]
    _check_names(configs)
    _check_shared_values(configs)
    return configs


def _resource(index: int, item: Any, defaults: dict[str, Any], options: dict[str, Any]) -> Config:
    where = f"resources[{index}]"
    if not isinstance(item, dict):
        raise ConfigError("must be a mapping (name, source, output, ...)", key=where)
    for section in SHARED_SECTIONS:
        if section in item:
            raise ConfigError(
                "shared by every resource: set it under defaults", key=f"{where}.{section}"
            )
    merged = _merged(defaults, item)
    if "name" not in item:
        raise ConfigError("is required", key=f"{where}.name")
    name = item["name"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"must be letters, digits, _ or -, got {name!r}", key=f"{where}.name")
    try:
        return parse_config(merged, **options, resource=True)
    except ConfigError as exc:
        raise ConfigError(exc.detail, key=_located(exc.key, item, defaults, index)) from None


def _merged(under: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` deep-merged onto `under`: mappings merge, any other value of `over` wins."""
    merged = dict(under)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _merged(below, value)
        else:
            merged[key] = value
    return merged


def _located(
    key: str | None, item: Mapping[str, Any], defaults: Mapping[str, Any], index: int
) -> str:
    """Where the value at dotted `key` was written: in the resource, or under defaults; a key
    written nowhere (a required one missing) belongs where its section is written, else to the
    resource."""
    resource = f"resources[{index}]" if key is None else f"resources[{index}].{key}"
    if key is None or _holds(item, key):
        return resource
    if _holds(defaults, key):
        return f"defaults.{key}"
    for end in range(len(parts := key.split(".")) - 1, 0, -1):
        section = ".".join(parts[:end])
        if _holds(item, section):
            return resource
        if _holds(defaults, section):
            return f"defaults.{key}"
    return resource


def _holds(document: Mapping[str, Any], key: str) -> bool:
    """Whether `document` has a value at dotted `key` (list indexes `[i]` are skipped)."""
    node: Any = document
    for part in re.split(r"\.|(?=\[)", key):
        if part.startswith("["):
            continue
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


# Values the shared session (timeouts) and throttle (pauses) take once for every resource.
SHARED_VALUES = (
    ("source", "timeout"),
    ("source", "connect_timeout"),
    ("source", "read_timeout"),
    ("source", "local_address"),
    ("retry", "max_retry_after"),
    ("retry", "on_long_quota"),
)


def _check_shared_values(configs: list[Config]) -> None:
    for section, key in SHARED_VALUES:
        first = getattr(getattr(configs[0], section), key)
        for index, config in enumerate(configs[1:], start=1):
            if getattr(getattr(config, section), key) != first:
                raise ConfigError(
                    "shared by every resource (one session, one throttle): set it under defaults",
                    key=f"resources[{index}].{section}.{key}",
                )


def _check_names(configs: list[Config]) -> None:
    by_name: dict[str, int] = {}
    for index, config in enumerate(configs):
        assert config.name is not None  # _resource requires it
        if config.name in by_name:
            raise ConfigError(
                f"{config.name!r} is the name of resources[{by_name[config.name]}] already",
                key=f"resources[{index}].name",
            )
        by_name[config.name] = index
    parents = {config.parent for config in configs}
    for index, config in enumerate(configs):
        if config.incremental is not None and (config.parent is not None or config.name in parents):
            raise ConfigError(
                "is not supported yet on a parent or a child resource: only on a resource "
                "with neither",
                key=f"resources[{index}].incremental",
            )
        if config.parent is not None:
            _check_parent(index, config, configs, by_name)
        else:
            _check_placeholders(index, config, None)


def _check_parent(
    index: int, config: Config, configs: list[Config], by_name: dict[str, int]
) -> None:
    where = f"resources[{index}]"
    parent = config.parent
    if parent not in by_name:
        known = ", ".join(sorted(by_name))
        raise ConfigError(
            f"names no resource: {parent!r} (resources: {known})", key=f"{where}.parent"
        )
    seen = {config.name}
    ancestor: str | None = parent
    while ancestor is not None:  # a -> b -> a would wait for itself forever
        if ancestor in seen:
            raise ConfigError(
                f"{parent!r} leads back to {config.name!r}: a cycle", key=f"{where}.parent"
            )
        seen.add(ancestor)
        ancestor = configs[by_name[ancestor]].parent
    # Children read their parent's finished records back from a file (writers/tee.py).
    upper = configs[by_name[parent]]
    if is_stream(upper.output.path):
        raise ConfigError(
            f"{parent!r} writes to a stream ({upper.output.path}); a parent's records must be "
            "in a file, which its children read back",
            key=f"{where}.parent",
        )
    if config.pagination.partition is not None:
        raise ConfigError(
            "a child resource makes one request chain per parent record: no partition windows",
            key=f"{where}.pagination.partition",
        )
    _check_placeholders(index, config, parent)


def _check_placeholders(index: int, config: Config, parent: str | None) -> None:
    where = f"resources[{index}]"
    texts = {"source.url": config.source.url}
    texts.update({f"source.params.{k}": v for k, v in config.source.params.items()})
    texts.update({f"source.headers.{k}": v for k, v in config.source.headers.items()})
    used = False
    for key, text in texts.items():
        for match in PLACEHOLDER.finditer(str(text)):
            if match.group(1) != parent:
                hint = f"only {{{parent}.FIELD}}" if parent else "no parent: set parent"
                raise ConfigError(
                    f"{match.group(0)} names no parent of this resource ({hint})",
                    key=f"{where}.{key}",
                )
            used = True
    if parent is not None and not used:
        raise ConfigError(
            f"a child needs a {{{parent}.FIELD}} placeholder in its URL, params or headers",
            key=f"{where}.source.url",
        )
