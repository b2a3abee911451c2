"""The proof before a config is written: harvest two pages with it, through the real engine,
and check they are the records the first answer began with."""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harvester.auth import TOKEN_ASKED
from harvester.config import parse_config
from harvester.discovery import DOCUMENT_ASKED
from harvester.errors import ConfigError, HarvesterError
from harvester.fetch import ANSWERED
from harvester.init.paging import First
from harvester.init.probe import InitFailed
from harvester.init.shape import identity
from harvester.read import decode_json
from harvester.runner import run
from harvester.secrets import Secrets
from harvester.stats import Stats
from harvester.stop import Stop


@dataclass(frozen=True)
class Verified:
    records: list[Any]  # the two pages, as harvested
    requests: int  # the harvest's requests, its token requests included
    seconds_per_page: float


async def verify(
    text: str,
    *,
    folder: Path,
    first: First,
    page_size: int,
    total: int | None,
    environ: Mapping[str, str],
    secrets: Secrets,
    say: Callable[[str], None],
    first_number: int,
) -> Verified:
    """Harvest two pages with the config `text` (one worker) and check them; InitFailed if not.

    `folder` is where the config will live (its relative paths start there). Each request is
    shown through `say`, numbered on from `first_number`."""
    raw = yaml.safe_load(text)
    with tempfile.TemporaryDirectory(prefix="harvester-init-") as tmp:
        out = Path(tmp) / "sample.jsonl"
        overrides = {"output.path": str(out), "concurrency.workers": 1}
        try:
            config = parse_config(raw, overrides=overrides, environ=environ, base=folder)
        except ConfigError as exc:  # a bug of init's: it writes only what it checked
            raise InitFailed(f"the config init wrote does not load: {exc}") from None
        stats = Stats()
        try:
            with _showing_requests(say, first_number):
                await run(
                    config,
                    max_records=2 * page_size,
                    stats=stats,
                    fresh=True,
                    stop=Stop(),
                    secrets=secrets,
                )
        except HarvesterError as exc:
            raise InitFailed(f"harvesting two pages with the new config failed: {exc}") from None
        records = [decode_json(line) for line in out.read_bytes().splitlines()]
    _check(records, first, page_size, total)
    pages = max(1, stats.requests)
    return Verified(records, stats.requests + stats.token_requests, stats.elapsed / pages)


class _Shown(logging.Handler):
    """Says each request of the harvest as it goes, from its DEBUG line."""

    def __init__(self, say: Callable[[str], None], number: int) -> None:
        super().__init__(logging.DEBUG)
        self._say, self.number = say, number

    def emit(self, record: logging.LogRecord) -> None:
        # Matched on the message as written: the masking filter has merged its arguments in.
        text = record.getMessage()
        if answered := _ANSWERED.fullmatch(text):
            line = f"GET {answered[2]} -> {answered[3]}"
        elif asked := _TOKEN_ASKED.fullmatch(text):
            line = f"POST {asked[1]}"
        elif document := _DOCUMENT_ASKED.fullmatch(text):
            line = f"GET {document[1]} -> {document[2]}"
        else:
            return
        self.number += 1
        self._say(f"  {self.number:>2}. {line} (the two-page harvest)")


def _pattern(form: str) -> re.Pattern[str]:
    """A %-format as a regular expression: %d a number, %s any text."""
    return re.compile(re.escape(form).replace("%d", r"(\d+)").replace("%s", "(.*)"))


_ANSWERED, _TOKEN_ASKED = _pattern(ANSWERED), _pattern(TOKEN_ASKED)
_DOCUMENT_ASKED = _pattern(DOCUMENT_ASKED)


@contextlib.contextmanager
def _showing_requests(say: Callable[[str], None], number: int) -> Iterator[None]:
    """The harvester logger at DEBUG for _Shown alone: its other handlers keep their level."""
    logger = logging.getLogger("harvester")
    level, shown = logger.level, _Shown(say, number)
    kept = [(handler, handler.level) for handler in logger.handlers]
    for handler, _ in kept:
        handler.setLevel(max(level, handler.level))
    logger.addHandler(shown)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(shown)
        logger.setLevel(level)
        for handler, before in kept:
            handler.setLevel(before)


def _check(records: list[Any], first: First, page_size: int, total: int | None) -> None:
    """The two pages hold the first answer's records, in its order, and as many as promised."""
    expected = 2 * page_size if total is None else min(2 * page_size, total)
    if total is not None and len(records) != expected:
        raise InitFailed(
            f"two pages of {page_size} with the new config held {len(records)} records, "
            f"not {expected}: the API's pages are not what init saw"
        )
    if not records:
        raise InitFailed("two pages with the new config held no records")
    ids = [identity(r, first.key) for r in records]
    if len(set(ids)) != len(ids):
        raise InitFailed("two pages with the new config hold a record twice: pages overlap")
    shared = min(len(ids), len(first.ids))
    if ids[:shared] != first.ids[:shared]:
        at = next(i for i in range(shared) if ids[i] != first.ids[i])
        raise InitFailed(
            f"two pages with the new config differ from the first answer at record {at + 1}: "
            "the API does not page the way init concluded"
        )
