"""`harvester init URL`: its arguments, the order of its questions, and what it writes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from yarl import URL

# The main command's parser and exit codes, so that both commands answer alike.
from harvester.cli import EXIT_OK, Parser, positive_int, reported
from harvester.errors import ConfigError
from harvester.init.discovery import discover_token_url
from harvester.init.draft import Findings, decide_total, document, output_name
from harvester.init.inputs import (
    DEFAULT_SECRET_VARIABLE,
    probing_config,
    probing_document,
    written_auth,
)
from harvester.init.page_size import largest_page
from harvester.init.paging import RESERVED, Detector, First
from harvester.init.probe import Budget, InitFailed, Prober, refused
from harvester.init.render import render
from harvester.init.report import summary
from harvester.init.shape import find_records, key_field
from harvester.init.verify import verify
from harvester.logs import setup_logging
from harvester.secrets import Secrets
from harvester.state import write_atomically

log = logging.getLogger("harvester")


def _init_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="harvester init",
        description="Ask an API a handful of questions (20 requests at most, each shown) and "
        "write a config that harvests it: where the records are, where the total is, how the "
        "pages go and how large they may be. The config is written only once two pages "
        "harvested with it held what the API's first answer began with.",
    )
    parser.add_argument("url", help="the collection's URL, e.g. https://api.example.com/v1/items")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--token-url", metavar="URL", help="the OAuth2 token endpoint")
    where.add_argument(
        "--issuer",
        metavar="URL",
        help="find the token endpoint in this issuer's discovery document",
    )
    parser.add_argument("--client-id", metavar="ID", help="the OAuth2 client id")
    parser.add_argument(
        "--client-secret-env",
        metavar="VAR",
        help="the environment variable holding the client secret (default "
        f"{DEFAULT_SECRET_VARIABLE}); the config refers to it as ${{VAR}}",
    )
    parser.add_argument("--scope", metavar="S", help="the scopes to ask for")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'Name: value'",
        help="a header for every request (repeatable); a secret as ${VAR}, kept so in the config",
    )
    parser.add_argument(
        "-o", "--output", default="config.yaml", metavar="PATH", help="default config.yaml"
    )
    parser.add_argument("--force", action="store_true", help="replace the file at -o")
    parser.add_argument(
        "--check", action="store_true", help="then show a sample and the planned requests and time"
    )
    parser.add_argument(
        "--max-requests", type=positive_int, default=20, metavar="N", help="default 20"
    )
    parser.add_argument(
        "--pace", type=float, default=0.25, metavar="S", help="seconds between requests (0.25)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def init_main(argv: list[str]) -> int:
    """The `harvester init` command; returns the exit code."""
    parser = _init_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.pace <= 60:
        parser.error("--pace must be between 0 and 60 seconds")
    setup_logging("DEBUG" if args.debug else "WARNING")
    secrets = Secrets()
    with secrets.masking_logs():
        return reported(
            lambda: asyncio.run(_init(args, secrets)),
            secrets,
            debug=args.debug,
            interrupted="interrupted: nothing was written",
        )


def _say(secrets: Secrets) -> Any:
    return lambda line: print(secrets.mask(line), file=sys.stderr, flush=True)


async def _init(args: argparse.Namespace, secrets: Secrets) -> int:
    target = Path(args.output)
    folder = _writable_target(target, force=args.force)
    say = _say(secrets)
    environ = os.environ
    raw = probing_document(args, environ, token_url=args.token_url)
    budget = Budget(limit=args.max_requests, pace=args.pace)
    if args.issuer:
        token_url = await discover_token_url(args.issuer, budget=budget, say=say, secrets=secrets)
        raw["auth"]["token_url"] = token_url
    config = probing_config(raw, environ, secrets)
    url = URL(config.source.url)
    say(f"asking {args.url} (at most {args.max_requests} requests):")
    async with Prober(config, budget=budget, say=say, secrets=secrets) as prober:
        url, first = await _first(prober, url)
        detector = Detector(prober, first, url)
        paging = await detector.paging()
        if paging is None:
            raise _undecided(detector.tried, prober.left, args.max_requests)
        size = await largest_page(prober, first, paging, url)
        if size.param and paging.size_param is None:
            paging.size_param = size.param
        used, rate_headers = prober.used, prober.rate_headers
    findings = Findings(
        url=_written_url(args.url, url, paging.strip),
        headers=dict(raw["source"].get("headers", {})),
        auth=written_auth(raw, args),
        first=first,
        paging=paging,
        size=size,
        total=decide_total(first, paging, size),
        output=output_name(str(url)),
        rate_headers=rate_headers,
    )
    text = render(document(findings))
    say(f"harvesting two pages of {size.size} with the config, to verify it:")
    verified = await verify(
        text,
        folder=folder,
        first=first,
        page_size=size.size,
        total=findings.total.value if findings.total else None,
        environ=environ,
        secrets=secrets,
        say=say,
        first_number=used,
    )
    findings.requests = used + verified.requests
    write_atomically(target, text.encode())
    print(secrets.mask(summary(findings, verified, target, check=args.check)), flush=True)
    return EXIT_OK


def _undecided(tried: list[str], left: int, limit: int) -> InitFailed:
    """Why no paging was found: none of the candidates held, or the budget ran out first."""
    if left <= RESERVED:
        what = f"tried {', '.join(tried)}" if tried else "could try nothing"
        return InitFailed(
            f"could not tell how the pages go within --max-requests {limit} ({what}; "
            f"{RESERVED} requests are kept to verify the config): give init more, e.g. "
            "--max-requests 20, or write pagination by hand (README: Pagination); nothing was "
            "written"
        )
    return InitFailed(
        f"could not tell how the pages go: tried {', '.join(tried)}, and no page continued the "
        "first answer's records. Write pagination (style and its parameters) by hand (README: "
        "Pagination); nothing was written"
    )


def _writable_target(target: Path, *, force: bool) -> Path:
    """The folder the config goes into; ConfigError if the file is there and not to be replaced."""
    if target.exists() and not force:
        raise ConfigError(f"{target} exists: give another path with -o, or --force to replace it")
    if target.is_dir():
        raise ConfigError(f"-o {target}: is a folder; give the config file's path")
    folder = target.resolve().parent
    if not folder.is_dir():
        raise ConfigError(f"-o {target}: the folder {folder} does not exist")
    return folder


async def _first(prober: Prober, url: URL) -> tuple[URL, First]:
    """The first answer and its records; rows of values where objects may be had are asked for
    again as objects (datasette's `_shape=objects`)."""
    answer = await prober.get(url, why="the first answer")
    if not answer.ok:
        raise refused(answer, "the first request")
    found = find_records(answer.body)
    if found is None:
        keys = ", ".join(map(str, answer.body)) if isinstance(answer.body, dict) else "none"
        raise InitFailed(
            f"the first answer holds no list of records (keys there: {keys}): give init the URL "
            "of a collection"
        )
    if found.arrays and isinstance(answer.body, dict) and "columns" in answer.body:
        objects = url.update_query({"_shape": "objects"})
        again = await prober.get(objects, why="records as objects?")
        shaped = find_records(again.body) if again.ok else None
        if shaped is not None and not shaped.arrays and shaped.records:
            url, answer, found = objects, again, shaped
    if len(found.records) < 2:
        raise InitFailed(
            f"the first answer holds {len(found.records)} record(s) at "
            f"{found.path or 'the body'}: init needs two or more to prove how the pages go"
        )
    return url, First(answer, found, key_field(found.records))


def _written_url(given: str, used: URL, strip: set[str]) -> str:
    """source.url as the user gave it (its ${VAR}s kept), with what init added, less the paging
    parameters harvester now sends itself."""
    base = URL(given) if "${" not in given else None
    if base is None:
        return given
    query = {k: v for k, v in used.query.items() if k not in strip}
    return str(base.with_query(query)) if query != dict(base.query) else given
