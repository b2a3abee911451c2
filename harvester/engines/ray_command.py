"""`harvester ray CONFIG --shards N`: its arguments and exit codes (the engine is engines/ray.py).

Ray is imported only once the arguments are read, so that `--help` and a usage error answer
without it, and a missing extra is one line, not an ImportError's traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from harvester.cli import EXIT_OK, EXIT_USAGE, add_log_level, positive_int, reported
from harvester.config import load_config
from harvester.logs import setup_logging
from harvester.merge_command import shards_parser
from harvester.secrets import Secrets

log = logging.getLogger("harvester")

MISSING_EXTRA = "harvester ray needs the ray extra: pip install 'harvester[ray]'"


def _ray_parser() -> argparse.ArgumentParser:
    parser = shards_parser(
        "harvester ray",
        "Harvest CONFIG as N shards running as Ray tasks, with one token and one rate budget "
        "for all of them (a token actor and a rate actor), then merge the shards into "
        "output.path. Without --address, a local Ray instance is started.",
        shards="cut the harvest into N shards (as --shard K/N does, K from 0 to N - 1)",
    )
    parser.add_argument(
        "--concurrent-shards",
        type=positive_int,
        metavar="P",
        help="run at most P shards at once (default: all N)",
    )
    parser.add_argument(
        "--address", metavar="ADDR", help="join the Ray cluster at ADDR (e.g. ray://host:10001)"
    )
    add_log_level(parser, default="WARNING", help="the shards' log level too (default WARNING)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def ray_main(argv: list[str]) -> int:
    """The `harvester ray` command; returns the exit code."""
    parser = _ray_parser()
    args = parser.parse_args(argv)
    if args.concurrent_shards is not None and args.concurrent_shards > args.shards:
        parser.error(f"--concurrent-shards must be 1 to --shards ({args.shards})")
    setup_logging(args.log_level)
    if not _ray_installed():
        log.error(MISSING_EXTRA)
        return EXIT_USAGE
    secrets = Secrets()
    with secrets.masking_logs():
        return reported(
            lambda: _harvest(args, secrets),
            secrets,
            debug=args.debug,
            interrupted="interrupted: run the same command again to resume the shards",
        )


def _ray_installed() -> bool:
    try:
        import harvester.engines.ray  # noqa: F401 (imports ray)
    except ImportError as exc:
        if exc.name == "ray" or (exc.name or "").startswith("ray."):
            return False
        raise
    return True


def _harvest(args: argparse.Namespace, secrets: Secrets) -> int:
    from harvester.engines import ray as ray_engine

    config = load_config(args.config)
    secrets.add_configured(config.named_secrets())
    concurrent = args.concurrent_shards or args.shards
    # Refused before Ray starts (seconds), with the one line `--shard` says it with.
    ray_engine.shards_of(config, shards=args.shards, concurrent=concurrent)
    ray_engine.start(args.address, cpus=concurrent)
    try:
        report = ray_engine.harvest_on_ray(
            config, shards=args.shards, concurrent=concurrent, log_level=args.log_level
        )
    finally:
        ray_engine.stop()
    for outcome in report.outcomes:
        line = f"{outcome.label}: {outcome.records:,} records, {outcome.requests:,} requests"
        if outcome.exit_code:
            line = f"{outcome.label}: failed: {outcome.error}"
        print(secrets.mask(line), file=sys.stderr, flush=True)
    if report.merged is None:
        failed = [o for o in report.outcomes if o.exit_code]
        log.error(
            "%d of %d shards failed; run the same command again: finished shards are not "
            "harvested again",
            len(failed),
            args.shards,
        )
        return report.exit_code
    merged = report.merged
    print(
        f"merged {merged.shards} shards into {merged.path}: {merged.records:,} records "
        f"(sha256 {merged.sha256}); {report.token_requests or 'unknown'} token requests for all "
        "of them, "
        f"{report.holds} cool-downs shared",
        flush=True,
    )
    return EXIT_OK
