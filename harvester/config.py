"""Load the YAML config, expand ${VAR}, validate once, and hand out frozen config objects.

Everything downstream trusts these objects: every check that can be made before the first
request is made here, and every error names its key path (`pagination.page_size: must be > 0`).
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import ipaddress
import math
import os
import re
import ssl
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints
from urllib.parse import parse_qsl, urlsplit

import yaml
import yarl

from harvester.errors import ConfigError, carries_secret, looks_secret, redact_url
from harvester.secret_sources import config_secrets
from harvester.secrets import Secrets


class Secret:
    """A string that never shows itself in a repr, a log line or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


AuthType = Literal["client_credentials", "bearer", "none"]
AuthMethod = Literal["client_secret_basic", "client_secret_post"]
PaginationStyle = Literal["offset", "range", "page", "cursor", "link"]
RepeatedPages = Literal["check", "allow"]
LongQuota = Literal["wait", "fail"]
INDEXED_STYLES = ("offset", "range", "page")  # page i can be asked for without page i-1


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    records: str = ""
    timeout: float = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    # Bounds against a hostile or broken server: see harvester/body.py and harvester/hosts.py.
    max_body_bytes: int = 256 * 1024 * 1024
    max_compression_ratio: int = 100
    allow_private_hosts: bool = False

    def __repr__(self) -> str:
        return _masked_repr(self)


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    type: AuthType = "client_credentials"
    token_url: str | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    scope: str | None = None
    auth_method: AuthMethod = "client_secret_basic"
    extra_params: dict[str, str] = field(default_factory=dict)
    refresh_margin: float = 30.0
    token: Secret | None = None
    allow_insecure_http: bool = False

    def __repr__(self) -> str:
        return _masked_repr(self)


@dataclass(frozen=True, kw_only=True)
class PartitionConfig:
    """Windows [from_k, to_k) of a numeric or time key, each paginated by its own cursor."""

    param_from: str
    param_to: str
    start: int | str
    end: int | str
    parts: int
    # The API's upper filter includes its bound (id_lte): [a, b) is sent as a..b-1 (integers)
    # or a..the last microsecond before b (timestamps).
    to_inclusive: bool = False
    # The record field the windows split on: each record's must fall inside its window.
    key: str | None = None


@dataclass(frozen=True, kw_only=True)
class PaginationConfig:
    style: PaginationStyle = "offset"
    page_size: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    start: int = 0
    # None until validated: then the style's default (body:total, content-range, unknown).
    total: str | None = None
    range_unit: str = "items"
    page_param: str = "page"
    page_size_param: str = "page_size"
    first_page: int = 1
    total_pages: str | None = None
    cursor_param: str = "cursor"
    next_cursor: str | None = None
    cursor_from_record: str | None = None
    # None until validated: then "link-header" for style link.
    next_url: str | None = None
    allow_cross_host: bool = False
    partition: PartitionConfig | None = None
    # "allow": consecutive pages holding the same records are data, not an API ignoring paging.
    repeated_pages: RepeatedPages = "check"

    @property
    def total_known(self) -> bool:
        """Whether the first answer tells how many pages there are."""
        return self.total != "unknown" or self.total_pages is not None


@dataclass(frozen=True, kw_only=True)
class ConcurrencyConfig:
    workers: int = 16
    max_buffered_pages: int = 64
    rate_limit: float | None = None  # requests per second across all workers
    burst: int = 1
    adaptive: bool = True
    # After SIGINT or SIGTERM, how long pages already in flight may take to finish.
    stop_grace: float = 5.0


@dataclass(frozen=True, kw_only=True)
class RetryConfig:
    max_attempts: int = 8
    initial_backoff: float = 0.5
    max_backoff: float = 60.0
    statuses: tuple[int, ...] = (408, 429, 500, 502, 503, 504)
    # A server asking us to come back later than this (a long quota, reset by the hour) is held
    # with every worker until then ("wait"), or fails the run at once ("fail").
    max_retry_after: float = 600.0
    on_long_quota: LongQuota = "wait"


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    verify: bool = True
    ca_bundle: str | None = None  # a PEM file; replaces the system's CAs

    def ssl_context(self) -> ssl.SSLContext:
        """The context every https request of the run uses (token and data alike)."""
        if self.verify:
            context = ssl.create_default_context(cafile=self.ca_bundle)
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        # As in aiohttp's own default contexts: its client speaks HTTP/1.1 and nothing else.
        context.set_alpn_protocols(["http/1.1"])
        return context


@dataclass(frozen=True, kw_only=True)
class OutputConfig:
    path: str
    # Seconds between checkpoints at most; one more is written when a run stops unfinished.
    checkpoint_every: float = 5.0


@dataclass(frozen=True, kw_only=True)
class Config:
    source: SourceConfig
    auth: AuthConfig = field(default_factory=lambda: AuthConfig(type="none"))
    pagination: PaginationConfig = field(default_factory=PaginationConfig)
    concurrency: ConcurrencyConfig = field(default_factory=ConcurrencyConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    output: OutputConfig

    def secrets(self) -> list[str]:
        """The secret values in this config (see `named_secrets`)."""
        return list(self.named_secrets().values())

    def named_secrets(self) -> dict[str, str]:
        """{key path: secret value} for the run's registry (harvester.secret_sources)."""
        return config_secrets(self)

    def masked(self) -> dict[str, Any]:
        """This config as plain data (for --print-config), every secret in it shown as ***."""
        data: dict[str, Any] = _masked(self, Secrets(self.secrets()).mask)
        for key, text in getattr(self, "_as_written", {}).items():
            _set_dotted(data, key, text)  # checked with a stand-in: shown as written
        return data

    def warnings(self) -> list[str]:
        """What this config puts at risk on purpose; to be said on every run."""
        found = []
        if not self.tls.verify:
            found.append(
                "tls.verify is false: TLS certificates are not checked, so anyone on the "
                "network path can pose as the API and read the credentials"
            )
        for key, url, what in _secret_destinations(self):
            if self.auth.allow_insecure_http and _insecure(url):
                found.append(
                    f"auth.allow_insecure_http is true: {what} goes over plain http to "
                    f"{redact_url(url)} ({key})"
                )
        return found


def _masked(value: Any, mask: Callable[[str], str]) -> Any:
    """`value` as plain data (mappings, lists, scalars) with every secret replaced by ***."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _masked(getattr(value, f.name), mask) for f in dataclasses.fields(value)}
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, dict):
        return {k: "***" if carries_secret(k) else _masked(v, mask) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_masked(v, mask) for v in value]
    if isinstance(value, str):
        if urlsplit(value).scheme in ("http", "https") and _url_has_secret(value):
            value = redact_url(value)
        value = mask(value)  # a secret repeated elsewhere (in a URL, a scope) is a secret
    return value


def _url_has_secret(url: str) -> bool:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    return "@" in parts.netloc or any(looks_secret(name) for name, _ in query)


def _masked_repr(section: Any) -> str:
    # The default repr would show the values of secret headers and parameters (Authorization,
    # api_key) and credentials in URLs; this one shows *** instead, and otherwise looks the same.
    shown = ", ".join(f"{name}={value!r}" for name, value in _masked(section, str).items())
    return f"{type(section).__name__}({shown})"


# --- loading -------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(
    path: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    keep_unset: bool = False,
) -> Config:
    """Read, expand and validate the config file; `overrides` maps dotted keys to values.

    Relative paths in the file (output.path, tls.ca_bundle) are taken from the file's folder,
    so that a run does not depend on the folder it starts in (cron's is the home folder);
    those in `overrides` (the command line's) stay relative to the current folder. With
    `keep_unset` (--print-config), an unset ${VAR} stays as written where text is accepted.
    """
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


def parse_config(
    raw: Mapping[str, Any],
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    base: Path | None = None,
    keep_unset: bool = False,
) -> Config:
    """Validate an already parsed mapping (the YAML document) into a Config; relative paths in
    it are taken from `base` (the config file's folder) if given."""
    env = os.environ if environ is None else environ
    _check_shape(raw)
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


PATH_KEYS = (("output", "path"), ("tls", "ca_bundle"))


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    for section, key in PATH_KEYS:
        values = data.get(section)
        if not isinstance(values, dict):
            continue  # not a mapping: validation says so
        value = values.get(key)
        # "-" is stdout; /dev/stdout and other absolute paths stay as they are.
        if isinstance(value, str) and value.strip() and value != "-":
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


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    walked: list[str] = []
    for part in parents:
        walked.append(part)
        child = node.get(part)
        if child is None:  # an empty section in YAML is null
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"must be a mapping, got {_kind(child)}", key=".".join(walked))
        node = child
    node[last] = value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _build(cls: type[Any], data: Any, key: str, expanded: set[str]) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"must be a mapping, got {_kind(data)}", key=key or None)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if name not in fields:
            nearest = difflib.get_close_matches(str(name), list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean {nearest[0]!r}?)" if nearest else ""
            raise ConfigError(f"unknown key{hint}", key=_join(key, str(name)))
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        path = _join(key, name)
        if name in data:
            values[name] = _coerce(data[name], hints[name], path, expanded)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError("is required", key=path)
    return cls(**values)


def _coerce(value: Any, tp: Any, key: str, expanded: set[str]) -> Any:  # noqa: C901
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [t for t in options if t is not type(None)]
        for candidate in inner[:-1]:  # e.g. int | str: the first type that fits wins
            try:
                return _coerce(value, candidate, key, expanded)
            except ConfigError:
                continue
        return _coerce(value, inner[-1], key, expanded)
    if dataclasses.is_dataclass(tp):
        return _build(tp, {} if value is None else value, key, expanded)  # type: ignore[arg-type]
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}; got {value!r}", key=key)
        return value
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"must be a mapping, got {_kind(value)}", key=key)
        return {str(k): _scalar_text(v, _join(key, str(k))) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"must be a list, got {_kind(value)}", key=key)
        (inner, _) = get_args(tp)
        return tuple(_coerce(v, inner, f"{key}[{i}]", expanded) for i, v in enumerate(value))
    if tp is Secret:
        return Secret(_scalar_text(value, key))
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime.date):  # YAML reads unquoted timestamps as datetimes
            return value.isoformat().replace("+00:00", "Z")
        raise ConfigError(f"must be a string, got {_kind(value)}", key=key)
    if tp is bool:
        if isinstance(value, str) and key in expanded and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
        if isinstance(value, bool):
            return value
        raise ConfigError(f"must be true or false, got {_kind(value)}", key=key)
    if tp in (int, float):
        return _number(value, tp, key, key in expanded)
    raise TypeError(f"no coercion for {tp!r}")  # a bug in this module, not in the config


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


_LARGEST = 2**63 - 1  # what an int setting may hold; far beyond any sensible value


def _number(value: Any, tp: type[Any], key: str, from_env: bool) -> Any:
    if from_env and isinstance(value, str):
        try:
            value = int(value) if tp is int else float(value)
        except ValueError:
            raise ConfigError(f"must be a number, got {value!r}", key=key) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"must be a number, got {_kind(value)}", key=key)
    if isinstance(value, int) and abs(value) > _LARGEST:  # YAML's ints have no bound
        raise ConfigError("is too large: must be within ±(2**63 - 1)", key=key)
    if tp is int and not isinstance(value, int):
        if not float(value).is_integer():
            raise ConfigError(f"must be a whole number, got {value!r}", key=key)
        value = int(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"must be a finite number, got {value!r}", key=key)
    return tp(value)


def _scalar_text(value: Any, key: str) -> str:
    # Query parameters and headers are text on the wire; YAML's numbers and booleans become the
    # text a user would have typed.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"must be a string or number, got {_kind(value)}", key=key)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


# --- cross-field checks --------------------------------------------------------------------


def _check(config: Config) -> Config:
    _check_url(config.source.url, "source.url")
    _check_auth(config.auth)
    _check_plain_http(config)
    _check_tls(config.tls)
    pagination = _check_pagination(config.pagination)
    _positive("source.timeout", config.source.timeout)
    _positive("source.connect_timeout", config.source.connect_timeout)
    _positive("source.read_timeout", config.source.read_timeout)
    _at_least("source.max_body_bytes", config.source.max_body_bytes, 1)
    _at_least("source.max_compression_ratio", config.source.max_compression_ratio, 1)
    _at_least("concurrency.workers", config.concurrency.workers, 1, 1000)
    _at_least("concurrency.max_buffered_pages", config.concurrency.max_buffered_pages, 1)
    _at_least("concurrency.burst", config.concurrency.burst, 1)
    if config.concurrency.rate_limit is not None:
        _positive("concurrency.rate_limit", config.concurrency.rate_limit)
    if config.concurrency.stop_grace < 0:
        raise ConfigError("must be >= 0", key="concurrency.stop_grace")
    _positive("output.checkpoint_every", config.output.checkpoint_every)
    _check_retry(config.retry)
    if Path(config.output.path).name in ("", ".", ".."):
        raise ConfigError(f"must name a file, got {config.output.path!r}", key="output.path")
    if not config.output.path.strip():
        raise ConfigError("must not be empty", key="output.path")
    return dataclasses.replace(config, pagination=pagination)


def _check_url(url: str, key: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port out of range)
        yarl.URL(url)
    except ValueError as exc:
        raise ConfigError(f"is not a valid URL ({exc}): {url!r}", key=key) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"must be an http(s) URL with a host, got {url!r}", key=key)


def _check_auth(auth: AuthConfig) -> None:
    if auth.type == "client_credentials":
        for name in ("token_url", "client_id", "client_secret"):
            value = getattr(auth, name)
            if value is None or str(value.reveal() if isinstance(value, Secret) else value) == "":
                raise ConfigError(
                    "is required when auth.type is client_credentials", key=f"auth.{name}"
                )
        assert auth.token_url is not None
        _check_url(auth.token_url, "auth.token_url")
    elif auth.type == "bearer" and (auth.token is None or not auth.token.reveal()):
        raise ConfigError("is required when auth.type is bearer", key="auth.token")
    if auth.refresh_margin < 0:
        raise ConfigError("must be >= 0", key="auth.refresh_margin")


def _secret_destinations(config: Config) -> list[tuple[str, str, str]]:
    """(key, URL, what) for every URL a secret is sent to: the token endpoint and the API."""
    auth, source = config.auth, config.source
    found = []
    if auth.type == "client_credentials" and auth.token_url is not None:
        found.append(("auth.token_url", auth.token_url, "the client secret"))
    if auth.type != "none":
        found.append(("source.url", source.url, "the access token"))
    elif any(map(carries_secret, [*source.headers, *source.params])) or _url_has_secret(source.url):
        found.append(("source.url", source.url, "a secret header or parameter"))
    return found


def _insecure(url: str) -> bool:
    """Whether `url` is plain http to a host other than this machine (loopback)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").rstrip(".")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return True


def _check_plain_http(config: Config) -> None:
    if config.auth.allow_insecure_http:
        return  # said as a warning on every run instead: Config.warnings
    for key, url, what in _secret_destinations(config):
        if _insecure(url):
            raise ConfigError(
                f"would send {what} over plain http to {urlsplit(url).hostname}, which is not "
                "loopback, where anyone on the network path can read it: use https, or set "
                "auth.allow_insecure_http: true to accept that",
                key=key,
            )


def _check_tls(tls: TlsConfig) -> None:
    key = "tls.ca_bundle"
    if tls.ca_bundle is None:
        return
    if not tls.verify:
        raise ConfigError("cannot go with tls.verify: false, which checks nothing", key=key)
    if not tls.ca_bundle.strip():
        raise ConfigError("must not be empty (leave it out to trust the system's CAs)", key=key)
    # Loaded once here, so that a wrong file fails before the first request, not at it.
    try:
        tls.ssl_context()
    except ssl.SSLError as exc:  # before OSError: SSLError is one
        raise ConfigError(
            f"{tls.ca_bundle} holds no PEM certificate that can be loaded ({exc.reason or exc})",
            key=key,
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {tls.ca_bundle}: {exc.strerror or exc}", key=key) from None


_TOTAL_DEFAULTS = {"offset": "body:total", "range": "content-range", "page": "body:total"}


def _check_pagination(p: PaginationConfig) -> PaginationConfig:
    _at_least("pagination.page_size", p.page_size, 1)
    _at_least("pagination.start", p.start, 0)
    _at_least("pagination.first_page", p.first_page, 0, 1)
    total = p.total or ("unknown" if p.total_pages else _TOTAL_DEFAULTS.get(p.style, "unknown"))
    if total == "content-range" and p.style != "range":
        raise ConfigError("content-range needs pagination.style: range", key="pagination.total")
    if total not in ("unknown", "content-range"):
        _check_source_spec(total, "pagination.total", "unknown")
    if p.total_pages is not None:
        if p.style != "page":
            raise ConfigError("needs pagination.style: page", key="pagination.total_pages")
        _check_source_spec(p.total_pages, "pagination.total_pages")
    names = ["offset_param", "limit_param", "range_unit", "page_param", "page_size_param"]
    for name in names + ["cursor_param"]:
        if not getattr(p, name):
            raise ConfigError("must not be empty", key=f"pagination.{name}")
    next_url = _check_chain_keys(p)
    if p.partition is not None:
        if p.style not in ("cursor", "link"):
            raise ConfigError("needs pagination.style cursor or link", key="pagination.partition")
        _check_partition(p.partition)
    return dataclasses.replace(p, total=total, next_url=next_url)


def _check_chain_keys(p: PaginationConfig) -> str | None:
    """The cursor and link keys: exactly one source of the next page. Returns next_url."""
    if p.style == "cursor":
        if (p.next_cursor is None) == (p.cursor_from_record is None):
            raise ConfigError(
                "style cursor needs exactly one of next_cursor or cursor_from_record",
                key="pagination.next_cursor",
            )
        if p.next_cursor is not None:
            _check_source_spec(p.next_cursor, "pagination.next_cursor")
    elif p.next_cursor is not None or p.cursor_from_record is not None:
        name = "next_cursor" if p.next_cursor is not None else "cursor_from_record"
        raise ConfigError("needs pagination.style: cursor", key=f"pagination.{name}")
    if p.style != "link":
        if p.next_url is not None:
            raise ConfigError("needs pagination.style: link", key="pagination.next_url")
        return None
    next_url = p.next_url or "link-header"
    if next_url != "link-header":
        kind, _, path = next_url.partition(":")
        if kind != "body" or not path:
            raise ConfigError(
                f"must be body:<dotted.path> or link-header; got {next_url!r}",
                key="pagination.next_url",
            )
    return next_url


def _check_source_spec(spec: str, key: str, *extra: str) -> None:
    kind, _, arg = spec.partition(":")
    if kind not in ("body", "header") or not arg:
        others = "".join(f", {e}" for e in extra)
        content_range = ", content-range" if key == "pagination.total" else ""
        raise ConfigError(
            f"must be body:<dotted.path>, header:<Name> or header:<Name>.<dotted.path> (a "
            f"JSON-valued header){content_range}{others}; got {spec!r}",
            key=key,
        )


def _check_partition(part: PartitionConfig) -> None:
    key = "pagination.partition"
    for name in ("param_from", "param_to"):
        if not getattr(part, name):
            raise ConfigError("must not be empty", key=f"{key}.{name}")
    if part.key is not None and not part.key:
        raise ConfigError("must name a record field, or be left out", key=f"{key}.key")
    _at_least(f"{key}.parts", part.parts, 1, 10_000)
    start, end = part.start, part.end
    if isinstance(start, int) != isinstance(end, int):
        raise ConfigError("start and end must both be integers or both timestamps", key=key)
    if isinstance(start, str) and isinstance(end, str):
        start_at = parse_timestamp(start, f"{key}.start")
        end_at = parse_timestamp(end, f"{key}.end")
        span = (end_at - start_at).total_seconds()
    else:
        assert isinstance(start, int) and isinstance(end, int)
        span = end - start
    if span <= 0:
        raise ConfigError(f"must be after start ({start})", key=f"{key}.end")
    if span < part.parts:
        raise ConfigError(
            f"{part.parts} parts do not fit in a span of {span:g}", key=f"{key}.parts"
        )


def parse_timestamp(text: str, key: str) -> datetime.datetime:
    """An ISO-8601 timestamp with a time zone (a bare one is taken as UTC)."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"must be an integer or an ISO-8601 timestamp, got {text!r}", key=key
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def _check_retry(r: RetryConfig) -> None:
    _at_least("retry.max_attempts", r.max_attempts, 1, 1000)
    for name in ("initial_backoff", "max_backoff", "max_retry_after"):
        if getattr(r, name) < 0:
            raise ConfigError("must be >= 0", key=f"retry.{name}")
    for i, status in enumerate(r.statuses):
        if not 100 <= status <= 599:
            raise ConfigError(
                f"must be an HTTP status (100-599), got {status}", key=f"retry.statuses[{i}]"
            )
    if 401 in r.statuses:
        raise ConfigError(
            "401 is handled by the token manager, not retried blindly", key="retry.statuses"
        )


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"must be > 0, got {value}", key=key)


def _at_least(key: str, value: int, low: int, high: int | None = None) -> None:
    if value < low:
        raise ConfigError(f"must be >= {low}, got {value}", key=key)
    if high is not None and value > high:
        raise ConfigError(f"must be <= {high}, got {value}", key=key)
