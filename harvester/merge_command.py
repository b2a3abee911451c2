"""`harvester merge CONFIG --shards N`: put a sharded harvest's shards together (merge.py)."""

from __future__ import annotations

import argparse

from harvester.cli import EXIT_OK, Parser, positive_int, reported
from harvester.config.resources import load_resources
from harvester.errors import ConfigError
from harvester.logs import setup_logging
from harvester.merge import merge_shards
from harvester.secrets import Secrets


def shards_parser(prog: str, description: str, *, shards: str) -> argparse.ArgumentParser:
    """The parser of a command over a sharded harvest: CONFIG and --shards N (`shards`: its
    help), as `harvester merge` and `harvester ray` take them."""
    parser = Parser(prog=prog, description=description)
    parser.add_argument("config", help="the YAML config file the shards are harvested with")
    parser.add_argument("--shards", type=positive_int, required=True, metavar="N", help=shards)
    return parser


def _merge_parser() -> argparse.ArgumentParser:
    parser = shards_parser(
        "harvester merge",
        "Check the manifests of the N shards of CONFIG's harvest (harvester CONFIG "
        "--shard K/N) and concatenate the shards, in order, into output.path: the same bytes "
        "as one uninterrupted run. Exit 2 names a shard that is missing or does not fit.",
        shards="how many shards",
    )
    parser.add_argument("--output", metavar="PATH", help="override output.path, as the shards did")
    parser.add_argument(
        "--keep-shards",
        action="store_true",
        help="keep the shard files and manifests (by default removed once merged)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def merge_main(argv: list[str]) -> int:
    """The `harvester merge` command; returns the exit code."""
    args = _merge_parser().parse_args(argv)
    setup_logging("INFO")
    secrets = Secrets()
    with secrets.masking_logs():

        def merge() -> int:
            overrides = {} if args.output is None else {"output.path": args.output}
            configs = load_resources(args.config, overrides=overrides)
            if len(configs) != 1 or configs[0].name is not None:
                raise ConfigError("harvester merge takes a config of one endpoint, not resources:")
            secrets.add_configured(configs[0].named_secrets())
            merge_shards(configs[0], count=args.shards, keep=args.keep_shards)
            return EXIT_OK

        return reported(merge, secrets, debug=args.debug, interrupted="merge interrupted")
