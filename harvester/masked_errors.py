"""Exceptions with every secret gone: harvester's own masked in place, others stood in for.

The registry (secrets.py) hands its `mask` here at `run()`'s edge. An exception chain may hold
an aiohttp error, whose text names the full URL (an API key in its query) and whose attributes
hold the request's headers (the token): what a traceback or a repr would show of it must go.
"""

from __future__ import annotations

from collections.abc import Callable

from harvester.errors import HarvesterError

Mask = Callable[[str], str]
# id of each exception met -> (it, kept alive so that no id is reused; what stands for it)
_Seen = dict[int, tuple[BaseException, BaseException]]


class MaskedError(Exception):
    """Stands in for an exception whose text or attributes held a secret: its masked text,
    with its traceback and its chain."""


def mask_exception(exc: BaseException, mask: Mask) -> BaseException:
    """The exception to raise in place of `exc`, every secret gone from it and its chain.

    harvester's own errors are masked in place (their fields too). Any other exception whose
    text or attributes hold a secret is replaced by a `MaskedError`; CancelledError and
    KeyboardInterrupt are kept, only their chains masked.
    """
    return _masked(exc, mask, {})


def _masked(exc: BaseException, mask: Mask, seen: _Seen) -> BaseException:
    known = seen.get(id(exc))
    if known is not None:
        return known[1]
    seen[id(exc)] = (exc, exc)  # for now: a chain that leads back here stops here
    masked = _masked_link(exc, mask, seen)
    seen[id(exc)] = (exc, masked)
    for attribute in ("__cause__", "__context__"):
        inner = getattr(masked, attribute)
        if inner is not None:
            setattr(masked, attribute, _masked(inner, mask, seen))
    return masked


def _masked_link(exc: BaseException, mask: Mask, seen: _Seen) -> BaseException:
    if isinstance(exc, HarvesterError):
        for name, value in vars(exc).items():
            if isinstance(value, str):
                setattr(exc, name, mask(value))
        exc.args = tuple(mask(a) if isinstance(a, str) else a for a in exc.args)
        return exc
    if isinstance(exc, BaseExceptionGroup):  # a TaskGroup's: tracebacks show every member
        members = [_masked(member, mask, seen) for member in exc.exceptions]
        if all(new is old for new, old in zip(members, exc.exceptions, strict=True)):
            return exc
        # A member had to be stood in for: so does the group, which would show it.
        shown = "; ".join(f"{type(m).__name__}: {m}" for m in members)
        return _stand_in(exc, f"{_name(exc)}: {exc} ({shown})")
    if not isinstance(exc, Exception):
        return exc  # a cancellation or interrupt must stay what it is
    text = f"{_name(exc)}: {exc}"
    shown = mask(text)
    if shown == text and not _holds_secret(exc, mask):
        return exc
    return _stand_in(exc, shown)


def _name(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def _stand_in(exc: BaseException, text: str) -> MaskedError:
    stand_in = MaskedError(text).with_traceback(exc.__traceback__)
    stand_in.__cause__, stand_in.__context__ = exc.__cause__, exc.__context__
    stand_in.__suppress_context__ = exc.__suppress_context__
    return stand_in


def _holds_secret(exc: BaseException, mask: Mask) -> bool:
    # aiohttp's errors keep the request (its headers: Authorization) among their attributes.
    try:
        shown = repr(vars(exc))
    except Exception:  # an attribute that cannot be shown cannot be vouched for either
        return True
    return mask(shown) != shown
