"""An OAuth2 authorization server built with authlib, for third_party_auth.py.

Run by benchmarks/.third_party/venv/bin/python (Flask and authlib are not in harvester's .venv):
    python authlib_app.py DATA.jsonl CLIENTS.json PORT

POST /oauth/token  authlib's AuthorizationServer, grant client_credentials only; each client of
                   CLIENTS.json ({client_id: {"method": ..., "secret": ..., "jwks": {...}}}) may
                   authenticate with its one method: client_secret_basic, client_secret_post
                   (authlib's own), client_secret_jwt or private_key_jwt (authlib's RFC 7523
                   JWTBearerClientAssertion: aud the token URL, exp, a jti never seen before).
GET /items         ?offset=&limit= (limit at most 100) -> {"items": [...], "total": N}, for a
                   token this server issued (else 401 invalid_token). DATA.jsonl holds one
                   record per line, served as written: the server parses no number.
GET /_stats        {"token_requests": n, "tokens_issued": m}, for the benchmark's table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import Flask, Response, request
from joserfc.jwk import KeySet, OctKey

MAX_LIMIT = 100
TOKEN_LIFETIME = 3600


class Client(ClientMixin):
    """A registered client allowed one token endpoint auth method and client_credentials."""

    def __init__(self, client_id: str, entry: dict[str, Any]) -> None:
        self.client_id = client_id
        self.method: str = entry["method"]
        self.secret: str = entry.get("secret", "")
        self.jwks: dict[str, Any] | None = entry.get("jwks")

    def get_client_id(self) -> str:
        return self.client_id

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method == self.method

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.secret) and client_secret == self.secret

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: str) -> str:
        return scope or ""

    def get_default_redirect_uri(self) -> str:
        return ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False


class ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    ]


class AssertionAuth(JWTBearerClientAssertion):
    """RFC 7523 2.2 client assertions: HS* signed with the client secret (client_secret_jwt),
    any other alg with a key of the client's JWKS (private_key_jwt)."""

    def __init__(self, method: str, audiences: list[str], seen: set[str]) -> None:
        super().__init__(validate_jti=True, leeway=5)
        self.CLIENT_AUTH_METHOD = method
        self._audiences = audiences
        self._seen = seen

    def __call__(self, query_client: Any, req: Any) -> Any:
        assertion = req.form.get("client_assertion")
        if assertion:
            headers, _ = self.extract_assertion(assertion)
            symmetric = str(headers.get("alg", "")).startswith("HS")
            if symmetric != (self.CLIENT_AUTH_METHOD == "client_secret_jwt"):
                return None  # the other assertion method's to check
        return super().__call__(query_client, req)

    def get_audiences(self) -> list[str]:
        return self._audiences

    def validate_jti(self, claims: Any, jti: str) -> bool:
        key = f"{claims['sub']}:{jti}"
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def resolve_client_public_key(self, client: Client) -> Any:
        if self.CLIENT_AUTH_METHOD == "client_secret_jwt":
            return OctKey.import_key(client.secret)
        return KeySet.import_key_set(client.jwks or {"keys": []})


def make_app(records: list[str], clients: dict[str, Client], port: int) -> Flask:
    app = Flask(__name__)
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": TOKEN_LIFETIME}
    tokens: dict[str, float] = {}  # access token -> when it expires
    stats = {"token_requests": 0, "tokens_issued": 0}

    def save_token(token: dict[str, Any], req: Any) -> None:
        tokens[token["access_token"]] = time.time() + float(token["expires_in"])
        stats["tokens_issued"] += 1

    server = AuthorizationServer(app, query_client=clients.get, save_token=save_token)
    server.register_grant(ClientCredentials)
    seen: set[str] = set()
    for method in ("client_secret_jwt", "private_key_jwt"):
        # aud: the token endpoint as the client reaches it (RFC 7523 section 3, point 3).
        audiences = [f"http://{host}:{port}/oauth/token" for host in ("127.0.0.1", "localhost")]
        server.register_client_auth_method(method, AssertionAuth(method, audiences, seen))

    @app.post("/oauth/token")
    def issue_token() -> Response:
        stats["token_requests"] += 1
        response: Response = server.create_token_response()
        return response

    @app.get("/items")
    def items() -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or tokens.get(token, 0) < time.time():
            return Response(
                '{"error": "invalid_token"}',
                status=401,
                content_type="application/json",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        offset = int(request.args.get("offset", "0"))
        limit = int(request.args.get("limit", str(MAX_LIMIT)))
        if offset < 0 or not 0 < limit <= MAX_LIMIT:
            return Response(
                '{"error": "bad offset or limit"}', 400, content_type="application/json"
            )
        page = ",".join(records[offset : offset + limit])
        body = f'{{"items": [{page}], "total": {len(records)}}}'
        return Response(body, content_type="application/json")

    @app.get("/_stats")
    def statistics() -> Response:
        return Response(json.dumps(stats), content_type="application/json")

    return app


def main() -> None:
    data, registry, port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    # split("\n"), not splitlines(): a record's text may hold U+2028 and its kin, unescaped.
    records = [line for line in data.read_text(encoding="utf-8").split("\n") if line]
    entries = json.loads(registry.read_text(encoding="utf-8"))
    clients = {client_id: Client(client_id, entry) for client_id, entry in entries.items()}
    make_app(records, clients, port).run(host="127.0.0.1", port=port, threaded=True)


if __name__ == "__main__":
    main()
