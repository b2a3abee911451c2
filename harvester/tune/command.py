"""`harvester tune CONFIG`: its arguments and exit codes (the measuring is ramp.py's)."""

from __future__ import annotations

import argparse
import asyncio
import logging

# The main command's parser and its argument types, so that both commands answer alike.
from harvester.cli import EXIT_OK, Parser, positive_int, reported
from harvester.config import load_config
from harvester.logs import setup_logging
from harvester.secrets import Secrets
from harvester.tune.ramp import tune
from harvester.tune.report import summary

log = logging.getLogger("harvester")


def _tune_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="harvester tune",
        description="Ramp concurrency (1, 2, 4, ...) against the API for a bounded time, "
        "reading pages without writing them; at the first 429, measure the rate the API "
        "sustains for the rest of the time. Prints a line per step, then recommends workers "
        "and rate_limit. Measures with no rate_limit, no retries and no adaptation; stops "
        "(exit 1) when most requests of a step fail.",
    )
    parser.add_argument("config", help="the YAML config file")
    parser.add_argument("--max-workers", type=positive_int, default=64, metavar="N")
    parser.add_argument(
        "--duration", type=float, default=60.0, metavar="S", help="seconds at most (default 60)"
    )
    parser.add_argument("--log-level", default="WARNING", type=str.upper)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def tune_main(argv: list[str]) -> int:
    """The `harvester tune` command; returns the exit code."""
    parser = _tune_parser()
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 24 * 3600:
        parser.error("--duration must be between 0 and 86400 seconds")
    setup_logging(args.log_level)
    secrets = Secrets()
    with secrets.masking_logs():
        return reported(
            lambda: _tune(args, secrets), secrets, debug=args.debug, interrupted="interrupted"
        )


def _tune(args: argparse.Namespace, secrets: Secrets) -> int:
    config = load_config(args.config)
    secrets.add_configured(config.named_secrets())
    for warning in config.warnings():
        log.warning(warning)
    tuning = asyncio.run(
        tune(
            config,
            max_workers=args.max_workers,
            duration=args.duration,
            secrets=secrets,
            say=lambda line: print(secrets.mask(line), flush=True),
        )
    )
    print("\n" + secrets.mask(summary(tuning)), flush=True)
    return EXIT_OK
