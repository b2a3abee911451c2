"""What the first refusal of a run is counted over, until a rate is learned from it.

The count runs from the first data request (a window may start there; what came before, a
token or a connection, is no window's), or from the end of a pause nothing was learned from (a
limit on requests in flight's). The sends meanwhile tell whether the limit has a burst
(rate_bisection.no_burst). A first refusal that came before any answer told a pace waits,
undecided, for the first success, which tells the latency. What the count teaches is
first_refusal.first_guess's.
"""

from __future__ import annotations

from harvester.admissions import Admissions
from harvester.first_refusal import FirstGuess, first_guess
from harvester.rate_bisection import Sends


class FirstCount:
    """The first refusal's count: from when, the sends since, and one waiting to be heard."""

    def __init__(self, start: float) -> None:
        self._from = start
        self._begun = False
        # When requests were sent: together (a burst), or one at a time (a limit with no burst
        # admits no two together).
        self.sends = Sends()
        self.no_burst = False  # as the last guess found
        # A first refusal that came before any answer told a pace: when, and the pause it
        # asked for; learned from at the first success.
        self.undecided: tuple[float, float] | None = None

    def begin(self, now: float) -> None:
        """A data request was sent at `now`; the first starts the count."""
        self.sends.sent(now)
        if not self._begun:
            self._begun = True
            self._from = max(self._from, now)

    def paused(self, now: float, hold: float) -> None:
        """A pause nothing was learned from held every worker until `now + hold`: the count
        starts over from its end."""
        self._from = max(self._from, now + hold)

    def guess(
        self,
        admitted: Admissions,
        now: float,
        hold: float,
        sequential: float | None,
        *,
        told: bool,
        answered_by: float,
        coarse: bool,
        stated: float | None,
        share: float,
    ) -> FirstGuess | None:
        """What a first refusal at `now`, asking for `hold`, teaches (first_guess's arguments);
        `stated`: the rate the API states, if it does."""
        # Admitted before the refusal, answered by then or soon after: a queue (a leaky bucket)
        # that holds answers back admitted the late ones at its own pace, not at once.
        seen = admitted.answered(self._from, answered_by)
        self.no_burst = self.sends.no_burst(seen, self._from, sequential)
        if stated is not None:
            # The API states its rate: a refusal is a burst's (the first requests, sent before
            # the statement came), not news of a lower rate. Paced at the statement from here.
            return FirstGuess(stated, ramping=False)
        # A refusal from before the count began (a token request's, refused before any data
        # request went): nothing was admitted over no time.
        elapsed = max(0.0, now - self._from)
        return first_guess(seen, elapsed, hold, sequential, told=told, coarse=coarse, share=share)
