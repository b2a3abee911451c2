"""What the demo API's handlers share: settings, stats, tokens, the rate limit, the fault draws."""

from __future__ import annotations

import random
from typing import Literal

from .ratelimit import TokenBucket, retry_after_seconds
from .records import EncodedRecords
from .settings import DemoSettings, DemoStats
from .tokens import TokenStore

Fault = Literal["5xx", "drop", "truncate", "429"]


class DemoState:
    """Everything the handlers share: one per app, on one event loop, so no locks are needed."""

    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings
        self.stats = DemoStats()
        self.tokens = TokenStore()
        self.records = EncodedRecords()
        self.random = random.Random(settings.seed)
        self._bucket: TokenBucket | None = None

    def rate_limit_wait(self) -> float:
        """0.0 if this request fits the rate limit, else the seconds until it would."""
        rate = self.settings.rate_limit
        if rate is None:
            return 0.0
        # The limit may be changed at run time; a new rate starts a new, full bucket.
        if self._bucket is None or self._bucket.rate != rate:
            self._bucket = TokenBucket(rate)
        return self._bucket.acquire()

    def draw_fault(self) -> Fault | None:
        """One draw decides among the faults, so they never overlap and each keeps its own rate."""
        s = self.settings
        rates: tuple[tuple[Fault, float], ...] = (
            ("5xx", s.fault_rate),
            ("drop", s.drop_rate),
            ("truncate", s.truncate_rate),
            ("429", s.throttle_rate),
        )
        draw = self.random.random()
        for fault, rate in rates:
            if draw < rate:
                return fault
            draw -= rate
        return None

    def retry_after(self, wait: float) -> str:
        if self.settings.retry_after is None:
            return str(retry_after_seconds(wait))
        # Sent as given, fractions too: tests set 0 so that nobody waits.
        return f"{self.settings.retry_after:g}"
