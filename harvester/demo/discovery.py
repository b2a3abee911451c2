"""The demo API's discovery documents: OpenID Connect Discovery's and RFC 8414's, for the
issuer `<base URL><issuer_path>`.

OpenID's sits at issuer + /.well-known/openid-configuration, RFC 8414's at
/.well-known/oauth-authorization-server + the issuer's path. `discovery_documents` says which
of the two are served (the other answers 404), `discovery_token_endpoint` whether they name the
token endpoint, and `advertised_auth_methods` what token_endpoint_auth_methods_supported lists
(None leaves it out).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

from aiohttp import web

if TYPE_CHECKING:
    from .settings import DemoSettings

DiscoveryDocument = Literal["openid", "oauth"]
DISCOVERY_DOCUMENTS: tuple[DiscoveryDocument, ...] = get_args(DiscoveryDocument)
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "tls_client_auth")
OPENID = "/.well-known/openid-configuration"
OAUTH = "/.well-known/oauth-authorization-server"
# Each document at the root issuer's place and at a path issuer's (the path without its "/").
ROUTES: tuple[tuple[DiscoveryDocument, str], ...] = (
    ("openid", OPENID),
    ("openid", "/{issuer_path:.+}" + OPENID),
    ("oauth", OAUTH),
    ("oauth", OAUTH + "/{issuer_path:.+}"),
)


def document(request: web.Request, kind: DiscoveryDocument, settings: DemoSettings) -> web.Response:
    """The `kind` document for the issuer whose path the request names; 404 for another."""
    named = request.match_info.get("issuer_path", "")
    path = "/" + named if named else ""
    if kind not in settings.discovery_documents or path != settings.issuer_path.rstrip("/"):
        return web.json_response({"error": "not_found"}, status=404)
    base = f"{request.scheme}://{request.host}"
    body: dict[str, Any] = {
        "issuer": base + settings.issuer_path,
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
    }
    if settings.discovery_token_endpoint:
        body["token_endpoint"] = f"{base}/oauth2/token"
    if settings.advertised_auth_methods is not None:
        body["token_endpoint_auth_methods_supported"] = list(settings.advertised_auth_methods)
    return web.json_response(body)
