"""The checks of an `incremental:` section (harvester.incremental runs it), keyed on one Config:
the single-endpoint document's top-level section and a resource's own both come here."""

from __future__ import annotations

import datetime

from harvester.config.output import resolve_format
from harvester.config.schema import Config, IncrementalConfig
from harvester.errors import ConfigError
from harvester.stream import is_stream

START = "{incremental.start}"  # the placeholder for the window's start in url, params, headers


def check_incremental(config: Config) -> None:
    """ConfigError, naming the key, unless `config.incremental` can run as asked."""
    inc = config.incremental
    if inc is None:
        return
    if not inc.field.strip():
        raise ConfigError("must name the record field holding the cursor value", key=_k("field"))
    if inc.primary_key is not None and not inc.primary_key.strip():
        raise ConfigError("must name a record field, or be left out", key=_k("primary_key"))
    initial_value(inc)
    _check_window_carrier(config, inc)
    output = config.output
    if is_stream(output.path):
        raise ConfigError(
            "must be a folder with incremental: each run adds one file to it", key="output.path"
        )
    if resolve_format(output) != ("jsonl", "none"):
        raise ConfigError(
            "incremental runs write JSON Lines, uncompressed, for now: leave output.format and "
            "output.compression out",
            key="output.format",
        )
    if output.max_records_per_file is not None:
        raise ConfigError("cannot go with incremental", key="output.max_records_per_file")


def initial_value(inc: IncrementalConfig) -> int | datetime.datetime:
    """incremental.initial as a number or an aware time; ConfigError where it is neither, or
    where lookback is not in its units (a whole number for a number key)."""
    if inc.lookback < 0:
        raise ConfigError(f"must be >= 0, got {inc.lookback:g}", key=_k("lookback"))
    if isinstance(inc.initial, bool) or not isinstance(inc.initial, int | str):
        raise ConfigError("must be an integer or an ISO 8601 time", key=_k("initial"))
    if isinstance(inc.initial, int):
        if inc.lookback != int(inc.lookback):
            raise ConfigError(
                f"must be a whole number of key units when incremental.initial is a number "
                f"({inc.initial}), got {inc.lookback:g}",
                key=_k("lookback"),
            )
        return inc.initial
    try:
        moment = datetime.datetime.fromisoformat(inc.initial.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"must be an integer or an ISO 8601 time like 2024-01-01T00:00:00Z, got "
            f"{inc.initial!r}",
            key=_k("initial"),
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _check_window_carrier(config: Config, inc: IncrementalConfig) -> None:
    """The window's start goes out as `param`, or where {incremental.start} stands: one of them."""
    source = config.source
    places = [("source.url", source.url)]
    places += [(f"source.params.{k}", v) for k, v in source.params.items()]
    places += [(f"source.headers.{k}", v) for k, v in source.headers.items()]
    holders = [key for key, text in places if START in text]
    if inc.param is None and not holders:
        raise ConfigError(
            f"is required unless source.url, source.params or source.headers hold {START}: "
            "name the query parameter that carries the stored value (e.g. updated_since)",
            key=_k("param"),
        )
    if inc.param is not None:
        if not inc.param.strip():
            raise ConfigError("must not be empty", key=_k("param"))
        if holders:
            raise ConfigError(
                f"give one of incremental.param or {START} (found in {holders[0]}), not both",
                key=_k("param"),
            )
        if inc.param in source.params:
            raise ConfigError(
                "is also set in source.params: the run sets it to the window's start",
                key=f"source.params.{inc.param}",
            )


def _k(name: str) -> str:
    return f"incremental.{name}"
