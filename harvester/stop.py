"""Stopping early on request (SIGINT, SIGTERM): no new page, a grace period for those in flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Stop:
    """A request to stop early (SIGINT, SIGTERM): no page is started once it is made, and pages
    in flight get `grace` seconds to finish; `request(at_once=True)` leaves them none."""

    def __init__(self, *, grace: float = 5.0) -> None:
        self.grace = grace
        self.reason: str | None = None
        self._scopes: list[asyncio.Timeout] = []

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str, *, at_once: bool = False) -> None:
        self.reason = reason
        for scope in self._scopes:
            self._shorten(scope, 0.0 if at_once else self.grace)

    def _shorten(self, scope: asyncio.Timeout, seconds: float) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        current = scope.when()
        if current is None or deadline < current:
            scope.reschedule(deadline)

    @contextlib.asynccontextmanager
    async def grace_period(self) -> AsyncIterator[None]:
        """Run the body until it ends, or until the grace period after a stop request runs out
        (TimeoutError, the body cancelled)."""
        async with asyncio.timeout(None) as scope:
            self._scopes.append(scope)
            if self.requested:
                self._shorten(scope, self.grace)
            try:
                yield
            finally:
                self._scopes.remove(scope)
