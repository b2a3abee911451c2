"""python -m harvester.demo: serve the demo API until SIGINT or SIGTERM.

Prints one line, `demo API listening on http://HOST:PORT`, once it accepts connections; tools
that start it (harvester.demo.launch, the benchmarks, the tests) wait for that line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from .auth_options import add_token_args, token_settings
from .flags import add_carrier_args, add_changes_args, add_quirk_args, add_tls_args
from .mtls import DemoCertificates
from .server import run_demo
from .settings import RATE_LIMIT_HEADERS, DemoSettings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    d = DemoSettings()
    p = argparse.ArgumentParser(
        prog="python -m harvester.demo",
        description="An OAuth2-protected, paginated demo API with switchable faults.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--records", type=int, default=d.records, help="size of the dataset")
    p.add_argument("--max-page-size", type=int, default=d.max_page_size, help="cap on limit/Range")
    p.add_argument("--latency", type=float, default=d.latency, help="seconds per data request")
    p.add_argument("--token-latency", type=float, default=d.token_latency, help="seconds per token")
    p.add_argument("--client-id", default=d.client_id, help="the one known client")
    p.add_argument("--client-secret", default=d.client_secret, help="its secret")
    p.add_argument("--scopes", nargs="+", default=list(d.scopes), help="scopes a client may ask")
    p.add_argument("--token-lifetime", type=float, default=d.token_lifetime, help="seconds")
    p.add_argument("--expires-in-as-string", action="store_true", help='send "3600", not 3600')
    p.add_argument("--omit-expires-in", action="store_true", help="no expires_in in tokens")
    p.add_argument("--revoke-tokens-after", type=int, help="revoke all tokens at data request N")
    p.add_argument("--rate-limit", type=float, help="data requests per second, all clients")
    p.add_argument(
        "--rate-limit-per-address",
        action="store_true",
        help="--rate-limit for each client source address, not for all clients together",
    )
    p.add_argument(
        "--rate-limit-headers",
        choices=RATE_LIMIT_HEADERS,
        default=d.rate_limit_headers,
        help="with --rate-limit: X-RateLimit-* (x), the IETF draft's RateLimit* (ietf), or both",
    )
    p.add_argument(
        "--rate-limit-queue",
        type=int,
        default=d.rate_limit_queue,
        metavar="N",
        help="with --rate-limit: queue up to N requests over the rate, answered late at its pace, "
        "as nginx's limit_req burst=N without nodelay; refuse only when the queue is full",
    )
    p.add_argument(
        "--rate-limit-status",
        type=int,
        choices=(429, 503),
        default=d.rate_limit_status,
        help="the status of the limiter's refusals (nginx's limit_req: 503)",
    )
    p.add_argument(
        "--rate-limit-no-retry-after",
        action="store_true",
        help="with --rate-limit: refuse with no Retry-After (a sliding log behind a framework "
        "that sends none)",
    )
    p.add_argument("--retry-after", type=float, help="Retry-After on 429; unset: from the limiter")
    p.add_argument("--fault-rate", type=float, default=d.fault_rate, help="fraction: 5xx")
    p.add_argument("--drop-rate", type=float, default=d.drop_rate, help="fraction: no answer")
    p.add_argument(
        "--truncate-rate", type=float, default=d.truncate_rate, help="fraction: half a body"
    )
    p.add_argument("--throttle-rate", type=float, default=d.throttle_rate, help="fraction: 429")
    p.add_argument("--slow-rate", type=float, default=d.slow_rate, help="fraction: answered late")
    p.add_argument("--slow-seconds", type=float, default=d.slow_seconds, help="of a slow answer")
    p.add_argument(
        "--cut-rate", type=float, default=d.cut_rate, help="fraction: half a body, then hang up"
    )
    p.add_argument("--storm-at", type=int, metavar="N", help="a 429 storm from data request N")
    p.add_argument("--storm-seconds", type=float, default=d.storm_seconds, help="its length")
    p.add_argument("--seed", type=int, default=d.seed, help="for the fault draws")
    p.add_argument("--ignore-range", action="store_true", help="answer Range with everything")
    p.add_argument(
        "--loop-cursor-at",
        type=int,
        metavar="N",
        help="/cursor and /link: the page starting at N points next back to the page before",
    )
    p.add_argument(
        "--cross-host-next",
        metavar="BASE_URL",
        help="/link: next points at this base, e.g. http://127.0.0.2:8765, not the request's host",
    )
    add_quirk_args(p)
    add_carrier_args(p)
    p.add_argument("--users", type=int, default=d.users, help="/users: how many")
    p.add_argument("--orders-max", type=int, default=d.orders_max, help="orders per user, at most")
    p.add_argument("--orders-fixed", type=int, help="/users/{id}/orders: this many for every user")
    p.add_argument("--missing-users-every", type=int, metavar="K", help="every K-th user: 404")
    add_changes_args(p)
    add_tls_args(p)
    p.add_argument(
        "--exact-numbers",
        action="store_true",
        help="records also hold numbers a double cannot hold (2**64 + i, 1e400, ...), as text",
    )
    p.add_argument("--charset", default=d.charset, help="of every JSON body, e.g. iso-8859-1")
    p.add_argument("--bom", action="store_true", help="JSON bodies begin with the UTF-8 BOM")
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    p.add_argument("--quiet", action="store_true", help="print nothing but the listening line")
    add_token_args(p)
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> DemoSettings:
    return DemoSettings(
        users=args.users,
        orders_max=args.orders_max,
        orders_fixed=args.orders_fixed,
        missing_users_every=args.missing_users_every,
        changes_generation=args.changes_generation,
        changes_added=args.changes_added,
        changes_updated=args.changes_updated,
        records=args.records,
        client_id=args.client_id,
        client_secret=args.client_secret,
        scopes=tuple(args.scopes),
        token_lifetime=args.token_lifetime,
        expires_in_as_string=args.expires_in_as_string,
        omit_expires_in=args.omit_expires_in,
        latency=args.latency,
        token_latency=args.token_latency,
        max_page_size=args.max_page_size,
        rate_limit=args.rate_limit,
        rate_limit_per_address=args.rate_limit_per_address,
        rate_limit_headers=args.rate_limit_headers,
        rate_limit_queue=args.rate_limit_queue,
        rate_limit_status=args.rate_limit_status,
        rate_limit_retry_after=not args.rate_limit_no_retry_after,
        retry_after=args.retry_after,
        fault_rate=args.fault_rate,
        drop_rate=args.drop_rate,
        truncate_rate=args.truncate_rate,
        throttle_rate=args.throttle_rate,
        revoke_tokens_after=args.revoke_tokens_after,
        ignore_range=args.ignore_range,
        seed=args.seed,
        loop_cursor_at=args.loop_cursor_at,
        cross_host_next=args.cross_host_next,
        inclusive_filters=args.inclusive_filters,
        json_meta_header=args.json_meta_header,
        range_echo=args.range_echo,
        range_empty_past_end=args.range_empty_past_end,
        range_no_total=args.range_no_total,
        empty_pages_every=args.empty_pages_every,
        repeat_last_past_end=args.repeat_last_past_end,
        short_page_at=args.short_page_at,
        totals_in=args.totals_in,
        next_cursor_in=args.next_cursor_in,
        next_link_in=args.next_link_in,
        opaque_links=args.opaque_links,
        slow_rate=args.slow_rate,
        slow_seconds=args.slow_seconds,
        cut_rate=args.cut_rate,
        storm_at=args.storm_at,
        storm_seconds=args.storm_seconds,
        exact_numbers=args.exact_numbers,
        charset=args.charset,
        bom=args.bom,
        client_cert_required=args.client_cert_required,
        issuer_path=args.issuer_path,
        discovery_documents=tuple(args.discovery_documents),
        discovery_token_endpoint=not args.no_discovery_token_endpoint,
        advertised_auth_methods=tuple(args.advertised_auth_methods) or None,
        **token_settings(args),
    )


async def serve(settings: DemoSettings, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not on Windows; there Ctrl-C still ends asyncio.run() with KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    context = None
    if args.https is not None:
        certificates = DemoCertificates(settings.client_id)
        certificates.write(Path(args.https))
        context = certificates.server_context()
    async with run_demo(
        settings, args.host, args.port, access_log=args.access_log, ssl_context=context
    ) as server:
        print(f"demo API listening on {server.url}", flush=True)
        await stop.wait()
    if not args.quiet:
        served = orjson.dumps(server.stats.as_dict(), option=orjson.OPT_NON_STR_KEYS)
        print(f"demo API served: {served.decode()}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"python -m harvester.demo: {exc}", file=sys.stderr)
        return 2
    level = logging.INFO if args.access_log else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    try:
        asyncio.run(serve(settings, args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # most often: the port is taken
        print(f"python -m harvester.demo: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
