"""What an answer's rate-limit headers say: X-RateLimit-*, IETF RateLimit, RateLimit-Policy."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

# Seconds past which a reset value is a Unix timestamp rather than a delay (ten years).
_EPOCH_THRESHOLD = 315_360_000


@dataclass(frozen=True)
class RateLimitInfo:
    """What an answer's rate-limit headers say; None where they are silent."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # seconds from now until the budget is back
    window: float | None = None  # seconds the limit is counted over (RateLimit-Policy w=)


_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_PARAM = re.compile(r"([A-Za-z-]+)\s*=\s*\"?(\d+(?:\.\d+)?)", re.ASCII)


def parse_rate_limit(
    headers: Mapping[str, str], *, now: float | None = None
) -> RateLimitInfo | None:
    """Read `X-RateLimit-*`, `RateLimit-*`, `RateLimit` and `RateLimit-Policy`; None if absent.

    A reset above ten years of seconds is a Unix timestamp (in milliseconds above 1e12), else a
    delay in seconds. The IETF fields win over the X- ones where both are sent.
    """
    epoch = time.time() if now is None else now
    fields: dict[str, float] = {}
    for prefix in ("X-RateLimit-", "RateLimit-"):  # later wins: the IETF names
        for name in ("Limit", "Remaining", "Reset"):
            value = headers.get(prefix + name)
            number = _NUMBER.search(value) if value else None
            if number and math.isfinite(float(number.group())):
                fields[name.lower()] = float(number.group())
    combined = headers.get("RateLimit")  # `limit=50, remaining=3, reset=1` or `"x";r=3;t=1`
    if combined:
        aliases = {"r": "remaining", "t": "reset", "q": "limit"}
        for key, value in _PARAM.findall(combined):
            if math.isfinite(float(value)):
                fields[aliases.get(key.lower(), key.lower())] = float(value)
    window = None
    # Several policies (`100;w=60, 1000;w=3600`): the first, whose limit and window belong together.
    policy = (headers.get("RateLimit-Policy") or "").split(",")[0]
    if policy:
        params = {k.lower(): float(v) for k, v in _PARAM.findall(policy) if math.isfinite(float(v))}
        window = params.get("w")
        leading = _NUMBER.match(policy.strip())
        if "limit" not in fields and (leading or "q" in params):
            fields["limit"] = float(leading.group()) if leading else params["q"]
    if not fields and window is None:
        return None
    reset = fields.get("reset")
    if reset is not None and reset > _EPOCH_THRESHOLD:
        reset = (reset / 1000 if reset > 1e12 else reset) - epoch
    return RateLimitInfo(
        limit=int(fields["limit"]) if "limit" in fields else None,
        remaining=int(fields["remaining"]) if "remaining" in fields else None,
        reset=max(0.0, reset) if reset is not None else None,
        window=window,
    )
