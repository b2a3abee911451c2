"""Arguments, exit codes, progress display and the summary; no harvesting logic lives here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from harvester import __version__
from harvester.config import Config
from harvester.config.resources import load_resources
from harvester.errors import ConfigError, HarvesterError, Interrupted, redact_url
from harvester.interrupts import request_stop
from harvester.logs import LOG_FORMATS, PROGRESS_FIELDS, setup_logging
from harvester.progress import Mode, watch
from harvester.proxies import proxy_note
from harvester.resources import Totals, check_resource_args, run_resources
from harvester.runner import Stop, run, run_full_refresh
from harvester.secrets import Secrets
from harvester.shard import Shard, parse_shard, shard_config
from harvester.stats import Stats
from harvester.stream import is_stdout, is_stream

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

log = logging.getLogger("harvester")


class Parser(argparse.ArgumentParser):
    """The parser of every subcommand: a usage error is exit 2 with one line, as the main one."""

    def error(self, message: str) -> Any:  # argparse's own exits with 2, as we want
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"harvester: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="harvester",
        description="Download a whole dataset from a paginated, OAuth2-protected REST API.",
        epilog="harvester init URL: write a config for an API from its answers (see harvester "
        "init --help). harvester tune CONFIG: measure the concurrency and rate the API admits "
        "(see harvester tune --help). harvester merge CONFIG --shards N: put the shards of "
        "--shard K/N together. harvester ray CONFIG --shards N: run the shards on Ray (the ray "
        "extra). harvester schema: the config's JSON Schema, for editors. "
        "Exit codes: 0 done, 1 failed, 2 bad config or usage, "
        "130 interrupted.",
    )
    parser.add_argument("config", help="the YAML config file")
    parser.add_argument("--workers", type=positive_int, help="override concurrency.workers")
    parser.add_argument("--output", metavar="PATH", help="override output.path")
    parser.add_argument(
        "--resource",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this resource of a config with resources: (repeatable)",
    )
    parser.add_argument(
        "--max-records", type=positive_int, metavar="N", help="stop after N records (a sample)"
    )
    parser.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="harvest only shard K (from 0) of N into <stem>.shard-KKKKK-of-NNNNN<ext>; "
        "harvester merge CONFIG --shards N puts the shards together",
    )
    parser.add_argument(
        "--concurrent-shards",
        type=positive_int,
        metavar="P",
        help="with --shard: how many shards run at once (default N); concurrency.scope: run "
        "divides rate_limit and workers among them",
    )
    add_log_level(parser, default="INFO", help="log level (default INFO)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start over: ignore (and remove) the checkpoint and partial data of an earlier run",
    )
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="incremental: start over from incremental.initial in a new folder generation, "
        "which replaces the folder once complete",
    )
    parser.add_argument(
        "--stats-json", metavar="PATH", help="write the final stats as JSON here (- for stdout)"
    )
    parser.add_argument(
        "--progress",
        choices=["auto", "bar", "log", "none"],
        default="auto",
        help="progress display: a bar on a terminal, log lines otherwise (default auto)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="warnings and errors only: no progress, no summary",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text (default) or json: one JSON object per line on stderr, for machines",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (defaults filled in, ${VAR}s expanded, secrets masked) "
        "as YAML and exit without harvesting",
    )
    parser.add_argument("--version", action="version", version=f"harvester {__version__}")
    return parser


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_log_level(parser: argparse.ArgumentParser, *, default: str, help: str) -> None:
    """--log-level, as every command that logs takes it."""
    parser.add_argument(
        "--log-level",
        default=default,
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help=help,
    )


def positive_int(text: str) -> int:
    """An argument type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def reported(action: Callable[[], int], secrets: Secrets, *, debug: bool, interrupted: str) -> int:
    """action(), with a failure said as every subcommand says it: one masked line and its exit
    code; the traceback only with --debug. `interrupted`: the line for Ctrl-C."""
    try:
        return action()
    except HarvesterError as exc:
        log.error(secrets.mask(str(exc)), exc_info=debug)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error(interrupted)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one masked line, the traceback only on --debug
        error = secrets.mask(f"internal error: {type(exc).__name__}: {exc}")
        hint = "" if debug else " (run again with --debug for the traceback)"
        log.error(error + hint, exc_info=debug)
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """The `harvester` command; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["tune"]:
        from harvester.tune.command import tune_main  # it builds on this module's parser

        return tune_main(arguments[1:])
    if arguments[:1] == ["init"]:
        from harvester.init.command import init_main

        return init_main(arguments[1:])
    if arguments[:1] == ["merge"]:
        from harvester.merge_command import merge_main

        return merge_main(arguments[1:])
    if arguments[:1] == ["ray"]:
        from harvester.engines.ray_command import ray_main  # Ray itself only if installed

        return ray_main(arguments[1:])
    if arguments[:1] == ["schema"]:
        from harvester.schema_command import schema_main

        return schema_main(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    if args.log_format == "json" and args.progress == "bar":
        parser.error("--progress bar draws on stderr, where --log-format json writes: use log")
    level = "WARNING" if args.quiet and args.log_level in ("DEBUG", "INFO") else args.log_level
    setup_logging(level, fmt=args.log_format)
    # The run's one secret registry, masking every log record from the start; it learns the
    # config's secrets once the config is read, and each token as it is issued.
    secrets = Secrets()
    with _restoring_signals(), secrets.masking_logs():
        return _main(args, secrets)


def _main(args: argparse.Namespace, secrets: Secrets) -> int:
    stats = Stats()
    code = EXIT_FAILED
    error: str | None = None
    summary_to = sys.stdout
    try:
        configs = load_resources(
            args.config, overrides=_overrides(args), keep_unset=args.print_config
        )
        for each in configs:
            secrets.add_configured(each.named_secrets())
        shard = _shard_of(args)
        if configs[0].name is not None or args.resource:  # a resources: document
            if shard is not None:
                raise ConfigError(
                    "--shard splits a config of one endpoint, not resources: put the resource "
                    "to shard in a config of its own"
                )
            picked = check_resource_args(configs, args.resource, output=args.output)
            if args.print_config:
                shown = {"resources": [{"name": each.name, **each.masked()} for each in picked]}
                print(secrets.mask(yaml.safe_dump(shown, sort_keys=False)), end="", flush=True)
                return EXIT_OK
            stats = Totals([str(each.name) for each in picked])
            code = asyncio.run(_harvest_resources(configs, args, stats, secrets))
            _print_summary(stats, summary_to, args)
        else:
            config = configs[0]
            if args.print_config:
                # masked() hides every secret it knows of; the registry is the second lock.
                text = yaml.safe_dump(config.masked(), sort_keys=False, allow_unicode=True)
                print(secrets.mask(text), end="", flush=True)
                return EXIT_OK
            if is_stdout(config.output.path):  # the data goes there: the summary may not
                summary_to = sys.stderr
                if args.stats_json is not None and is_stdout(args.stats_json):
                    raise ConfigError(
                        "--stats-json: stdout carries the records (output.path is -): write "
                        "the stats to a file"
                    )
            code = asyncio.run(_harvest(config, args, stats, secrets, shard))
            _print_summary(stats, summary_to, args)
    except Interrupted as exc:
        code, error = exc.exit_code, secrets.mask(str(exc))
        log.warning(error)
        _print_summary(stats, summary_to, args)
    except HarvesterError as exc:
        code, error = exc.exit_code, secrets.mask(str(exc))
        log.error(error, exc_info=args.debug)
    except KeyboardInterrupt:  # before the harvest began: nothing was written
        code, error = EXIT_INTERRUPTED, "interrupted"
        log.error("interrupted before the harvest began: nothing was written")
    except Exception as exc:  # a bug: say so in one line, the traceback only on --debug
        code, error = EXIT_FAILED, secrets.mask(f"internal error: {type(exc).__name__}: {exc}")
        hint = "" if args.debug else " (run again with --debug for the traceback)"
        log.error(error + hint, exc_info=args.debug)
    if args.stats_json:  # also on a config error, so that no stale file tells of success
        _write_stats_json(Path(args.stats_json), stats, code, error, secrets)
    return code


def _print_summary(stats: Stats, out: TextIO, args: argparse.Namespace) -> None:
    if args.quiet:
        return
    if args.log_format == "json" and out is sys.stderr:  # every stderr line stays JSON
        log.info("summary", extra={PROGRESS_FIELDS: stats.as_dict()})
        return
    try:
        print(stats.summary(), file=out, flush=True)
    except BrokenPipeError:  # `harvester ... | head`: the harvest itself succeeded
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (quiets the flush at exit)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.workers is not None:
        overrides["concurrency.workers"] = args.workers
    if args.output is not None:
        overrides["output.path"] = args.output
    return overrides


def _shard_of(args: argparse.Namespace) -> Shard | None:
    if args.shard is None:
        if args.concurrent_shards is not None:
            raise ConfigError("goes with --shard K/N", key="--concurrent-shards")
        return None
    if args.full_refresh:
        raise ConfigError(
            "cannot go with --shard: an incremental run is not split", key="--full-refresh"
        )
    index, count = args.shard
    return Shard(index=index, count=count, concurrent=args.concurrent_shards or count)


async def _harvest(
    config: Config,
    args: argparse.Namespace,
    stats: Stats,
    secrets: Secrets,
    shard: Shard | None = None,
) -> int:
    shown = config if shard is None else shard_config(config, shard)  # its workers, its file
    workers = shown.concurrency.workers
    log.info(
        "harvesting %s%s (%s pagination, %s) into %s%s",
        redact_url(config.source.url),
        "" if shard is None else f", shard {shard}",
        config.pagination.style,
        "1 worker" if workers == 1 else f"{workers} workers",
        shown.output.path,
        proxy_note(config),
    )
    stop = Stop(grace=config.concurrency.stop_grace)
    progress = watch(stats, mode=_progress_mode(args), max_records=args.max_records)
    # --shard with --full-refresh was refused (_shard_of): shard is None for a full refresh.
    harvest = run_full_refresh if args.full_refresh else functools.partial(run, shard=shard)
    with progress, _stopping_on_signals(stop):
        await harvest(
            config,
            max_records=args.max_records,
            stats=stats,
            fresh=args.fresh,
            stop=stop,
            secrets=secrets,
        )
    if stats.shard is None or not stats.shard["finished_before"]:
        log.info("wrote %s", shown.output.path)
    return EXIT_OK


async def _harvest_resources(
    configs: list[Config], args: argparse.Namespace, stats: Totals, secrets: Secrets
) -> int:
    names = ", ".join(str(config.name) for config in configs)
    workers = configs[0].concurrency.workers
    log.info("harvesting %s (%d workers in all)%s", names, workers, proxy_note(configs[0]))
    stop = Stop(grace=configs[0].concurrency.stop_grace)
    progress = watch(stats, mode=_progress_mode(args), max_records=args.max_records)
    with progress, _stopping_on_signals(stop):
        await run_resources(
            configs,
            stats,
            names=args.resource,
            secrets=secrets,
            stop=stop,
            fresh=args.fresh,
            max_records=args.max_records,
        )
    return EXIT_OK


def _progress_mode(args: argparse.Namespace) -> Mode:
    if args.quiet:
        return "none"
    if args.log_format == "json" and args.progress == "auto":
        return "log"  # a bar would break the JSON lines
    mode: Mode = args.progress
    return mode


@contextlib.contextmanager
def _stopping_on_signals(stop: Stop) -> Iterator[None]:
    """SIGINT and SIGTERM stop the harvest gracefully; a second one stops it at once."""
    loop = asyncio.get_running_loop()
    installed = []
    for number in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(number, request_stop, stop, number.name)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no such support
            continue
        installed.append(number)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
            # The stop is done and checkpointed; until main() returns, a late signal must not
            # turn that into a traceback or a misleading line.
            signal.signal(number, signal.SIG_IGN)


@contextlib.contextmanager
def _restoring_signals() -> Iterator[None]:
    """Give SIGINT and SIGTERM back their handlers when the command is done (main() also runs
    inside other programs, and tests)."""
    numbers = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {number: signal.getsignal(number) for number in numbers}
    try:
        yield
    finally:
        for number, handler in saved.items():
            if handler is not None:  # None: set outside Python, nothing we can put back
                signal.signal(number, handler)


def _write_stats_json(
    path: Path, stats: Stats, code: int, error: str | None, secrets: Secrets
) -> None:
    document = {"exit_code": code, "error": error}
    document.update(stats.as_dict())
    document = secrets.mask_data(document)
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    if is_stream(str(path)):  # -, /dev/stdout, a pipe: written to, never replaced by a file
        try:
            if str(path) == "-":
                sys.stdout.flush()
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            else:
                with open(path, "wb") as stream:
                    stream.write(data)
        except OSError as exc:
            log.error("cannot write --stats-json %s: %s", path, exc.strerror)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False) as handle:
            handle.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        os.replace(handle.name, path)
    except OSError as exc:
        log.error("cannot write --stats-json %s: %s", path, exc.strerror)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
