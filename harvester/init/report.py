"""What init says when it has written the config: what it found, and with --check a sample and
the planned requests and time."""

from __future__ import annotations

import math
from pathlib import Path

from harvester.init.draft import Findings
from harvester.init.verify import Verified
from harvester.rate_headers import parse_rate_limit
from harvester.read import encode_records

_WORKERS = 16  # concurrency.workers' default, which init leaves in place
_SAMPLE = 3


def summary(f: Findings, verified: Verified, target: Path, *, check: bool) -> str:
    """The lines printed once the config is written."""
    paging = f.paging
    total = (
        f"{f.total.spec} = {f.total.value:,}" if f.total else "unknown (the end is a short page)"
    )
    lines = [
        f"wrote {target}: verified by harvesting two pages with it ({len(verified.records):,} "
        "records, the first answer's own, none twice)",
        f"  records    {f.first.found.path or '(the body)'}, key {f.first.key or 'not found'}",
        f"  pages      {paging.keys['style']}: {paging.proof}",
        f"  page size  {f.size.size} ({f.size.note})",
        f"  total      {total}",
        f"  requests   {f.requests} (init's probing and the two-page harvest)",
    ]
    if f.rate_headers:
        shown = list(f.rate_headers.items())[:3]
        lines.append("  rate       " + ", ".join(f"{k}: {v}" for k, v in shown))
    if check:
        lines += ["", *_sample(verified), *_plan(f, verified)]
    lines += ["", f"next: harvester {target}"]
    return "\n".join(lines)


def _sample(verified: Verified) -> list[str]:
    lines = [f"sample (the first {min(_SAMPLE, len(verified.records))} records):"]
    for record in verified.records[:_SAMPLE]:
        text = encode_records([record]).decode().strip()
        lines.append("  " + (text if len(text) <= 300 else text[:297] + "..."))
    return lines


def _plan(f: Findings, verified: Verified) -> list[str]:
    """The planned requests and time of a whole harvest."""
    if f.total is None:
        return ["plan: the total is unknown, so the number of requests is too"]
    pages = max(1, math.ceil(f.total.value / f.size.size))
    tokens = 1 if f.auth else 0
    chained = f.paging.keys["style"] in ("link", "cursor")
    per_page = verified.seconds_per_page
    seconds = pages * per_page if chained else pages * per_page / min(_WORKERS, pages)
    how = "one after another" if chained else f"{_WORKERS} workers in parallel"
    told = parse_rate_limit(f.rate_headers)
    if told is not None and told.limit and told.window:  # RateLimit-Policy: 50;w=1
        rate = told.limit / told.window
        if pages / rate > seconds:
            seconds, how = pages / rate, f"held to the API's {rate:g} requests/s"
    return [
        f"plan: {pages + tokens:,} requests ({pages:,} pages of {f.size.size}"
        + (" and a token" if tokens else "")
        + f"), about {_duration(seconds)} at {per_page * 1000:.0f} ms a page, {how}"
    ]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
