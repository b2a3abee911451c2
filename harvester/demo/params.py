"""Query parameters of the demo API's data endpoints, parsed strictly.

The newer endpoints raise BadParam for a value out of its domain; the server answers it with
400 invalid_request and the message, which names the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from harvester.numerals import ascii_int

from .records import first_id_created_at_or_after


class BadParam(ValueError):
    """A query parameter the endpoint cannot use; the message names it."""


def non_negative_int(query: Mapping[str, str], name: str, default: int) -> int | None:
    """The parameter as an int >= 0, `default` if absent, None if it is anything else."""
    raw = query.get(name)
    if raw is None:
        return default
    return ascii_int(raw)


def int_param(query: Mapping[str, str], name: str, default: int, *, least: int = 0) -> int:
    """The parameter as an int >= least, `default` if absent."""
    value = non_negative_int(query, name, default)
    if value is None or value < least:
        raise BadParam(f"{name}: must be an integer >= {least}, got {query[name]!r}")
    return value


def optional_int(query: Mapping[str, str], name: str) -> int | None:
    """The parameter as an int >= 0, or None if absent."""
    return int_param(query, name, 0) if name in query else None


def timestamp_param(query: Mapping[str, str], name: str) -> datetime | None:
    """The parameter as an aware datetime, or None if absent.

    ISO-8601 with `Z` or a UTC offset; a timestamp without one is refused as ambiguous.
    """
    raw = query.get(name)
    if raw is None:
        return None
    try:
        moment: datetime | None = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        # A '+' sent unencoded in a query string arrives as a space: say so.
        hint = "; a '+' in a URL must be sent as %2B" if " " in raw else ""
        raise BadParam(
            f"{name}: must be an ISO-8601 timestamp with Z or an offset, "
            f"e.g. 2024-01-01T05:00:00Z, got {raw!r}{hint}"
        )
    return moment


def id_window(
    query: Mapping[str, str], total: int, *, by_time: bool, inclusive: bool = False
) -> range:
    """The ids the filters select: `id_from <= id < id_to` and `since <= created_at < until`.

    Each filter is optional; `by_time` says whether the endpoint takes since/until at all.
    Equal bounds select nothing; a lower bound above its upper bound is a BadParam. With
    `inclusive`, the id filters are `id_gte <= id <= id_lte` instead, as on APIs that offer only
    inclusive filters, and id_from/id_to are refused, so a client that sends them fails loudly.
    """
    low, high = 0, total
    first, stop = _inclusive_ids(query) if inclusive else _half_open_ids(query)
    if first is not None:
        low = max(low, first)
    if stop is not None:
        high = min(high, stop)
    if by_time:
        since, until = timestamp_param(query, "since"), timestamp_param(query, "until")
        if since is not None and until is not None and since > until:
            raise BadParam(f"since: must be <= until, got {query['since']} > {query['until']}")
        if since is not None:
            low = max(low, first_id_created_at_or_after(since))
        if until is not None:
            high = min(high, first_id_created_at_or_after(until))
    return range(low, max(low, high))


def _half_open_ids(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    id_from, id_to = optional_int(query, "id_from"), optional_int(query, "id_to")
    if id_from is not None and id_to is not None and id_from > id_to:
        raise BadParam(f"id_from: must be <= id_to, got {id_from} > {id_to}")
    return id_from, id_to


def _inclusive_ids(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    """id_gte and one past id_lte; id_gte = id_lte + 1 is an empty window, sent inclusively."""
    for name in ("id_from", "id_to"):
        if name in query:
            raise BadParam(f"{name}: not supported; filter with id_gte and id_lte (both inclusive)")
    id_gte, id_lte = optional_int(query, "id_gte"), optional_int(query, "id_lte")
    if id_gte is not None and id_lte is not None and id_gte > id_lte + 1:
        raise BadParam(f"id_gte: must be <= id_lte + 1, got {id_gte} > {id_lte} + 1")
    return id_gte, None if id_lte is None else id_lte + 1
