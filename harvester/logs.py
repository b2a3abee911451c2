"""How harvester's log records look on stderr: text for people, JSON Lines for machines.

Masking is not done here: harvester/secrets.py masks every record through a filter on the
"harvester" logger itself, so every handler (these, the progress bar's, a library user's own)
only ever sees masked records.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

# Counters attached to a record with `extra={PROGRESS_FIELDS: {...}}`: the JSON format puts
# them beside the message as fields of their own, the text format leaves them out.
PROGRESS_FIELDS = "harvester_progress"

log = logging.getLogger("harvester")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, message, and any counters."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _utc_iso(record.created),
            "level": record.levelname,
            "message": record.getMessage(),
        }
        fields = getattr(record, PROGRESS_FIELDS, None)
        if isinstance(fields, dict):
            document.update(fields)
        # The masking filter has turned any traceback into masked exc_text already.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["traceback"] = record.exc_text
        return orjson.dumps(document).decode()


def _utc_iso(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def text_formatter() -> logging.Formatter:
    """`2026-11-30 21:12:50 INFO message`: local time, with the date (a run may span midnight)."""
    return logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")


def setup_logging(level: str, *, fmt: LogFormat = "text", stream: TextIO | None = None) -> None:
    """Send harvester's records at `level` and above to `stream` (stderr) in format `fmt`."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else text_formatter())
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    # asyncio's own warnings (a task never retrieved, a slow callback) in the same format and
    # through the same masking (harvester.secrets masks the asyncio logger too), at its level.
    loop_log = logging.getLogger("asyncio")
    loop_log.handlers[:] = [handler]
    loop_log.propagate = False
