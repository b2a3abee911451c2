"""The run's one registry of secret values, and the one place that masks them.

Fed by the config (client secret, static token, private key and its password, secret-looking
headers and parameters), by the Basic credential, JWT client assertions and every token issued;
each value is known in the forms it takes in a URL (raw, percent-encoded, plus-encoded, as yarl
writes a query). Every exit path goes through it:
exception messages and their chains, log records (a filter on harvester's loggers, attached for
the length of a run), stats, checkpoints (placeholders instead of values), --print-config.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from yarl import URL

from harvester import placeholders
from harvester.masked_errors import MaskedError, mask_exception

__all__ = ["MASK", "RESUMED_TOKEN", "MaskedError", "Secrets", "url_forms"]

if TYPE_CHECKING:
    from harvester.config import Config

MASK = "***"
# Shorter values are not masked: "t" replaced in every message would leave nothing readable,
# and no credential worth the name is that short.
_SHORTEST = 4
# Loggers whose records are masked during a run: harvester's own, and asyncio's, which logs
# the text of exceptions nobody retrieved (an aiohttp error names its URL).
_LOGGERS = ("harvester", "asyncio")
# The forms a value takes in a URL, by the suffix its checkpoint placeholder carries.
_KINDS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("", lambda value: value),
    (":url", lambda value: quote(value, safe="")),
    (":plus", quote_plus),
    (":query", lambda value: URL.build(query={"k": value}).raw_query_string[2:]),
)
# On resume, a token placeholder becomes this stand-in, swapped for the current token's same
# form when the link is sent: the token saved with the link has most likely expired since.
# None is the start of another, so that replacing one leaves the others whole.
RESUMED_TOKEN = {kind: f"harvester-resumed-token-{kind[1:] or 'raw'}" for kind, _ in _KINDS}


def url_forms(value: str) -> dict[str, str]:
    """{placeholder suffix: the form `value` takes in a URL}, each distinct form once."""
    forms: dict[str, str] = {}
    for kind, text in _every_form(value).items():
        if text not in forms.values():
            forms[kind] = text
    return forms


def _mask_forms(value: str) -> set[str]:
    """Every form of `value` to mask: its URL forms, and each as a JSON string may write it
    (PHP's json_encode escapes "/" as "\\/"; others write any punctuation as \\u00XX)."""
    found = set()
    for form in url_forms(value).values():
        escaped = json.dumps(form)[1:-1]
        found |= {form, escaped, escaped.replace("/", "\\/")}
        found.add("".join(c if c.isalnum() and c.isascii() else f"\\u{ord(c):04x}" for c in form))
    return found


def _every_form(value: str) -> dict[str, str]:
    return {kind: form(value) for kind, form in _KINDS}


def _swappable_forms(token: str) -> tuple[tuple[str, str], ...]:
    """(each distinct form of `token`, the kind of form to put the next token in there).

    Where forms coincide (a token of letters and digits is the same in all of them), the link
    does not tell which encoding its server used: the percent-encoded form is right in any
    query, so the next token goes in that way."""
    kinds: dict[str, list[str]] = {}
    for kind, text in _every_form(token).items():
        kinds.setdefault(text, []).append(kind)
    preferred = (":url", ":query")
    return tuple(
        (text, next((k for k in preferred if k in shared), shared[0]))
        for text, shared in kinds.items()
    )


class Secrets:
    """Every secret value one run knows of; masks them wherever text leaves the run."""

    def __init__(self, values: Iterable[str] = (), *, on_add: Callable[[str], None] | None = None):
        # Replaced, never changed in place: the checkpoint thread reads them while tokens come.
        self._configured: tuple[str, ...] = ()
        self._names: dict[str, str] = {}  # configured value -> its name (the config key path)
        self._issued: tuple[str, ...] = ()  # tokens and the Basic credential, in order
        self._tokens: tuple[str, ...] = ()
        # (token, its distinct URL forms), worked out once: next links are checked per request.
        self._token_forms: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
        self._masks: tuple[str, ...] = ()  # every form of every value, longest first
        self._lock = threading.Lock()
        self._listeners = [on_add] if on_add is not None else []
        self._filter = _MaskingFilter(self)
        self.add_configured(values)

    @classmethod
    def of(cls, config: Config, *, on_add: Callable[[str], None] | None = None) -> Secrets:
        """The registry for a run of `config`."""
        return cls(config.named_secrets(), on_add=on_add)

    @property
    def configured(self) -> tuple[str, ...]:
        """The config's secret values, in the order `Config.secrets` gives them."""
        return self._configured

    @property
    def tokens(self) -> tuple[str, ...]:
        """Every access token issued (or configured as auth.token) in this run."""
        return self._tokens

    def listen(self, on_add: Callable[[str], None]) -> None:
        """`on_add` hears of every value known now and added from now on."""
        self._listeners.append(on_add)
        for value in (*self._configured, *self._issued):
            on_add(value)

    def add_configured(self, values: Mapping[str, str] | Iterable[str]) -> None:
        """Values from the config, by the key path that holds each (`Config.named_secrets`):
        checkpoint placeholders are named by it, so they survive changes to the rest of the
        config. Values given without names are named by their place in the registry."""
        named = values.items() if isinstance(values, Mapping) else ((None, v) for v in values)
        with self._lock:
            new: tuple[str, ...] = ()
            for name, value in named:
                if len(value) >= _SHORTEST and value not in self._names:
                    # A name never holds a brace: it would end the placeholder early.
                    shown = f"#{len(self._names)}" if name is None else name
                    self._names[value] = shown.replace("{", "(").replace("}", ")")
                    new += (value,)
            self._configured += new
        self._learned(new)

    def add(self, value: str, *, token: bool = False) -> None:
        """A secret made during the run: a token (`token`), or a credential derived from one."""
        if len(value) < _SHORTEST:
            return
        with self._lock:
            if token and value not in self._tokens:
                self._tokens += (value,)
                self._token_forms += ((value, _swappable_forms(value)),)
            if value in self._issued or value in self._configured:
                return
            self._issued += (value,)
        self._learned((value,))

    def _learned(self, values: tuple[str, ...]) -> None:
        if not values:
            return
        with self._lock:
            forms = {form for v in (*self._configured, *self._issued) for form in _mask_forms(v)}
            self._masks = tuple(sorted(forms, key=len, reverse=True))
        for value in values:
            for listener in self._listeners:
                listener(value)

    def __bool__(self) -> bool:
        return bool(self._masks)

    def __repr__(self) -> str:
        return f"Secrets({len(self._configured)} configured, {len(self._issued)} issued)"

    # --- masking text ---------------------------------------------------------------------

    def mask(self, text: str) -> str:
        """`text` with every form of every secret replaced by ***."""
        for form in self._masks:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def mask_bytes(self, data: bytes) -> bytes:
        for form in self._masks:
            encoded = form.encode()
            if encoded in data:
                data = data.replace(encoded, MASK.encode())
        return data

    def mask_data(self, value: Any) -> Any:
        """Plain data (mappings, lists, scalars) with every string in it masked, keys too."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask_data(k): self.mask_data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_data(v) for v in value]
        return value

    def mask_exception(self, exc: BaseException) -> BaseException:
        """The exception to raise in place of `exc`, every secret gone from it and its chain
        (see masked_errors.py)."""
        return mask_exception(exc, self.mask)

    # --- log records ----------------------------------------------------------------------

    @contextlib.contextmanager
    def masking_logs(self) -> Iterator[None]:
        """Mask every record of harvester's loggers while inside; reentrant."""
        loggers = [logging.getLogger(name) for name in _LOGGERS]
        attached = [lg for lg in loggers if self._filter not in lg.filters]
        for logger in attached:
            logger.addFilter(self._filter)
        try:
            yield
        finally:
            for logger in attached:
                logger.removeFilter(self._filter)

    # --- tokens in next links -------------------------------------------------------------

    def current_token_in(self, url: str, current: str) -> str:
        """`url` with any earlier token (or a resumed link's stand-in) replaced by `current`."""
        now = _every_form(current)
        for kind, stand_in in RESUMED_TOKEN.items():
            if stand_in in url:
                url = url.replace(stand_in, now[kind])
        for old, forms in self._token_forms:
            if old != current:
                for form, kind in forms:
                    if form in url:
                        url = url.replace(form, now[kind])
        return url

    # --- checkpoints ----------------------------------------------------------------------

    def _placeholder_forms(self) -> list[tuple[str, str]]:
        """(a secret's form in a URL, the name of its placeholder): configured values by key
        path, `secret:<key path><kind>`; tokens `token<kind>`."""
        found: dict[str, str] = {}
        names = self._names
        named = [(f"secret:{names[v]}", v) for v in self._configured]
        named += [("token", v) for v in self._tokens if v not in names]
        for name, value in named:
            for kind, form in url_forms(value).items():
                found.setdefault(form, name + kind)
        return list(found.items())

    def with_placeholders(self, text: str) -> str:
        """`text` (a saved link or cursor) with every secret in it as a placeholder."""
        return placeholders.encode(text, self._placeholder_forms())

    def from_placeholders(self, text: str) -> str:
        """`text` as the server sent it: configured values put back from the config, tokens as
        RESUMED_TOKEN stand-ins. placeholders.UnknownPlaceholder for a secret the config no
        longer holds."""
        by_name = {
            f"secret:{self._names[v]}{kind}": form
            for v in self._configured
            for kind, form in _every_form(v).items()
        }
        by_name.update({f"token{kind}": stand_in for kind, stand_in in RESUMED_TOKEN.items()})
        return placeholders.decode(text, by_name.get)


class _MaskingFilter(logging.Filter):
    """Masks the message, the traceback and the stack of every record it sees."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        record.msg, record.args = self._secrets.mask(record.getMessage()), None
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text, record.exc_info = text, None
        if record.exc_text:
            record.exc_text = self._secrets.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self._secrets.mask(record.stack_info)
        return True
