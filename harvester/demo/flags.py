"""The demo API's command-line switches by topic: TLS and discovery, /changes, where totals and
next links are carried, and the ways of real third-party servers (quirks)."""

from __future__ import annotations

import argparse

from .discovery import DISCOVERY_DOCUMENTS
from .mtls import CLIENT_CERT_REQUIRED
from .settings import CARRIERS, DemoSettings


def add_tls_args(p: argparse.ArgumentParser) -> None:
    """Switches for https, mutual TLS (harvester.demo.mtls) and discovery (demo.discovery)."""
    d = DemoSettings()
    p.add_argument(
        "--https",
        metavar="DIR",
        help="serve https with throwaway certificates (trustme); write ca.pem, client.pem and "
        "client.key (the client certificate, common name --client-id) to DIR",
    )
    p.add_argument(
        "--client-cert-required",
        choices=CLIENT_CERT_REQUIRED,
        default=d.client_cert_required,
        help="with --https: where a request without a client certificate is refused",
    )
    p.add_argument("--issuer-path", default=d.issuer_path, help="the issuer: base URL + this")
    p.add_argument(
        "--discovery-documents",
        nargs="*",
        choices=DISCOVERY_DOCUMENTS,
        default=list(d.discovery_documents),
        help="the discovery documents served: OpenID's, RFC 8414's",
    )
    p.add_argument(
        "--no-discovery-token-endpoint",
        action="store_true",
        help="discovery documents without a token_endpoint",
    )
    p.add_argument(
        "--advertised-auth-methods",
        nargs="*",
        default=list(d.advertised_auth_methods or ()),
        help="token_endpoint_auth_methods_supported (none given: the list is left out)",
    )


def add_changes_args(p: argparse.ArgumentParser) -> None:
    """Switches for /changes (harvester.demo.changes), the dataset that changes between runs."""
    d = DemoSettings()
    p.add_argument(
        "--changes-generation",
        type=int,
        default=d.changes_generation,
        metavar="G",
        help="/changes: serve the dataset after G generations of added and updated records "
        "(POST /admin/next-generation advances it)",
    )
    p.add_argument("--changes-added", type=int, default=d.changes_added, help="per generation")
    p.add_argument("--changes-updated", type=int, default=d.changes_updated, help="per generation")


def add_carrier_args(p: argparse.ArgumentParser) -> None:
    """Where /items tells its total, /cursor its next cursor and /link its next URL."""
    d = DemoSettings()
    carriers = {
        "--totals-in": (d.totals_in, "/items: the total in the body, in X-Total-Count, or both"),
        "--next-cursor-in": (d.next_cursor_in, "/cursor: next_cursor, X-Next-Cursor, or both"),
        "--next-link-in": (d.next_link_in, "/link: next in the body, the Link header, or both"),
    }
    for flag, (default, help_text) in carriers.items():
        p.add_argument(flag, choices=CARRIERS, default=default, help=help_text)


def add_quirk_args(p: argparse.ArgumentParser) -> None:
    """Switches for ways of real third-party servers (harvester.demo.quirks)."""
    flags = {
        "--inclusive-filters": "/cursor, /link: filter by id_gte/id_lte (inclusive); no id_from",
        "--json-meta-header": "/items, /pages: the total only in a JSON X-Pagination header",
        "--range-echo": "/range-items: echo a requested span past the end in Content-Range",
        "--range-empty-past-end": "/range-items: 206 [] instead of 416 past the end",
        "--range-no-total": "/range-items: '*' for the total in Content-Range",
        "--repeat-last-past-end": "/pages, /stream: past the end, the last page again",
        "--opaque-links": "/link: links carry an opaque token (?after=) instead of ?offset=",
    }
    for flag, help_text in flags.items():
        p.add_argument(flag, action="store_true", help=help_text)
    p.add_argument(
        "--empty-pages-every",
        type=int,
        metavar="K",
        help="/cursor, /link: every K-th page is empty and still carries the next cursor or link",
    )
    p.add_argument(
        "--short-page-at",
        type=int,
        metavar="N",
        help="/items, /stream, /pages: the page starting at offset N holds half the records asked",
    )
