"""What `harvester tune` prints: a line per step as it goes, then the advice and its lines."""

from __future__ import annotations

from dataclasses import dataclass, field

from harvester.config import ConcurrencyConfig, Config
from harvester.errors import redact_url
from harvester.tune.advice import Advice, Ending
from harvester.tune.measure import ERRORS_TOLERATED, Step


@dataclass
class Tuning:
    """What tune found: the steps, why the ramp ended there, and the advice."""

    steps: list[Step]
    advice: Advice
    ended: Ending
    max_workers: int
    # The config's concurrency, which the snippet changes.
    current: ConcurrencyConfig = field(default_factory=ConcurrencyConfig)


def workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


def intro(config: Config, *, max_workers: int, duration: float) -> str:
    """The first line: what is measured, and what of the config is set aside while measuring."""
    rate = config.concurrency.rate_limit
    aside = f"the config's rate_limit of {rate:g}/s set aside, " if rate is not None else ""
    return (
        f"tuning {redact_url(config.source.url)}: at most {duration:g} s, 1 to {max_workers} "
        f"workers; measured with no rate_limit ({aside}no retries, no adaptation)"
    )


def header() -> str:
    return (
        f"{'phase':<9} {'workers':>7} {'req/s':>8} {'2xx/s':>8} {'records/s':>10} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'429s':>5} {'errors':>6}"
    )


def step_line(s: Step) -> str:
    return (
        f"{s.phase:<9} {s.concurrency:>7} {s.requests_per_second:>8.1f} "
        f"{s.admitted_per_second:>8.1f} {s.records_per_second:>10,.0f} "
        f"{s.latency(0.5) * 1000:>7.0f} {s.latency(0.95) * 1000:>7.0f} "
        f"{s.throttled:>5} {s.errors:>6}"
    )


def sustained_intro(step: Step, seconds: float) -> str:
    """The line before the sustained phase, which may be long: why, and for how long."""
    after = f" after {step.first_refusal:.1f} s" if step.first_refusal is not None else ""
    return (
        f"-- the API refused a request{after} at {workers(step.concurrency)}: any burst "
        f"allowance is spent; measuring the sustained rate at {workers(step.concurrency)} "
        f"for {seconds:.1f} s"
    )


def _why_ended(t: Tuning) -> str:
    last = t.steps[-1] if t.steps else None
    at = f"at {workers(last.concurrency)}" if last else ""
    if last is not None and not last.requests:
        return (
            f"the ramp ended {at}: no request was answered within its step (the API is "
            "slower than a step: a longer --duration gives each step more time)"
        )
    if t.ended == "limit":
        return f"the ramp ended at the API's limit: it refused requests {at}"
    if t.ended == "errors" and last is not None:
        return (
            f"the ramp ended {at}: {last.errors} of {last.requests} requests failed, more than "
            f"the {ERRORS_TOLERATED:.0%} tolerated (the last: {last.last_error})"
        )
    if t.ended == "flat":
        return f"the ramp ended {at}: requests per second stopped growing, with no 429"
    if t.ended == "max-workers":
        return (
            f"the ramp reached --max-workers {t.max_workers} still growing, with no 429: the "
            "ceiling was --max-workers, not the API; a larger --max-workers finds the API's"
        )
    return f"the ramp ended {at}: the duration ran out"


def _how_measured(a: Advice) -> str:
    if a.limit is None:
        return ""
    if a.stated:
        return (
            f"the API states its limit (RateLimit-Policy): {a.limit:g} requests/s; a harvest "
            "with no rate_limit paces to 97% of it by itself"
        )
    if a.drained:
        return (
            f"sustained rate: {a.limit:.1f} requests/s admitted, measured over "
            f"{a.measured_over:.1f} s from the first refusal on: the burst allowance was "
            "drained first, not counted"
        )
    return (
        f"rate admitted: {a.limit:.1f} requests/s over {a.measured_over:.1f} s, with no time "
        "left to drain a burst allowance and measure the sustained rate: a longer --duration "
        "measures it"
    )


# A burst worth this many seconds of the sustained rate is told (_burst_told).
_BURST_WORTH_TELLING = 2.0


def _burst_told(a: Advice) -> str:
    """The burst the API allowed before its first refusal, where it is worth a harvest's while."""
    if a.limit is None or a.stated or a.burst < _BURST_WORTH_TELLING * a.limit:
        return ""
    return (
        f"burst: before its first refusal the API admitted about {a.burst} requests beyond its "
        f"sustained rate ({a.burst / a.limit:.0f} s of requests at that rate): a token "
        "bucket's burst, or a window's quota. A harvest with no rate_limit spends it at once "
        "and learns the rate, for a few 429s; the rate_limit below draws none and spends "
        "none. Not advised as concurrency.burst: tune cannot tell a bucket's burst from a "
        "window's quota, which a burst followed by a steady pace would overrun"
    )


def summary(t: Tuning) -> str:
    """Why the ramp ended, how the rate was measured, the advice and the lines to paste."""
    a = t.advice
    lines = [_why_ended(t)]
    if how := _how_measured(a):
        lines.append(how)
    if burst := _burst_told(a):
        lines.append(burst)
    rate = f" and rate_limit {a.rate_limit:g}/s" if a.rate_limit else ""
    lines += [f"recommended: workers {a.workers}{rate}; paste into the config:", ""]
    lines.append(a.config_lines(t.current))
    return "\n".join(lines)


def report(t: Tuning) -> str:
    """The whole table and the summary, as printed line by line along the way."""
    return "\n".join([header(), *(step_line(s) for s in t.steps), "", summary(t)])
