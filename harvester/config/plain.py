"""A Config built in Python, validated exactly as one read from YAML.

Config is a frozen dataclass anyone can build, with any values in it (`workers=0`, a URL that is
not one, a secret as plain text). Rather than teach the dataclasses a second set of rules, the
Python API turns such a Config back into the data a YAML document would hold and runs it through
the loader's own type checks (coerce.py) and cross-field checks (checks.py): one set of rules,
one set of messages naming the key path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from harvester.config.checks import _check
from harvester.config.coerce import _build, _set_dotted
from harvester.config.masking import Secret
from harvester.config.schema import Config


def validated(config: Config, overrides: Mapping[str, Any] | None = None) -> Config:
    """`config` (with dotted `overrides` applied) checked as the YAML loader checks a document.

    ConfigError names the first key that is wrong. No ${VAR} is expanded: the values of a
    Config are taken as they are, and relative paths stay relative to the current folder.
    """
    data = as_data(config)
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return _check(_build(Config, data, "", set()))


def as_data(value: Any) -> Any:
    """A config object as the plain data a YAML document would hold, secrets revealed.

    For validation only: never shown (Config.masked() is the form to show).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, Mapping):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [as_data(v) for v in value]
    return value
