"""harvester's client authentication against an OAuth2 server somebody else wrote: authlib.

    make third-party-auth                  # after `make third-party` installed the servers
    .venv/bin/python benchmarks/third_party_auth.py [--records N]

benchmarks/third_party_servers/authlib_app.py (Flask + authlib's AuthorizationServer, run from
benchmarks/.third_party/venv, installed by `make third-party`) registers one client per token
endpoint auth method: client_secret_basic, client_secret_post (a secret full of reserved
characters), client_secret_jwt (HS256 with the secret), private_key_jwt with an RS256 and an ES256
key that `cryptography` generates here (the server gets the public JWK). For each method the real
CLI harvests /items (offset/limit, a total) with that client:

    .venv/bin/python -m harvester cfg.yaml --stats-json stats.json --progress none

and must exit 0 with the whole dataset exactly (every record once, in order, every value as
served: numbers compared with their type and digits). Then the same config with a wrong secret or
a wrong key must fail: exit non-zero, `invalid_client` in its message, no output file, and no
secret or key material (neither the right nor the wrong one) on stdout or stderr.

columns: method; success (ok, or why not); failure (ok: refused as it should be, or why not);
token requests (what the server counted: the successful run / the refused one). Exits 1 unless
every cell is ok.
Each run's config and output stay in benchmarks/.third_party/auth/<method>/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from third_party import free_port, wait_ready
from third_party_cases import APPS, SERVER_PY, STATE, dumps_exact, loads_exact, seeded_records

ROOT = Path(__file__).resolve().parent.parent
WORK = STATE / "auth"
TIMEOUT = 120  # seconds for one harvest

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Method:
    """One client of the authlib server, and how harvester authenticates as it."""

    name: str  # the row's label
    client_id: str
    auth: dict[str, Any]  # harvester's auth keys besides token_url and client_id
    registered: dict[str, Any]  # the server's entry for the client
    wrong: dict[str, Any]  # the auth keys that must be refused
    material: list[str] = field(default_factory=list)  # must never be shown


def pem_of(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_lines(pem: str) -> list[str]:
    """The body lines of a PEM: any one of them in a message would show part of the key."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def public_jwk(key: PrivateKey) -> dict[str, Any]:
    """The public half of `key` as a JWK, as the client would register it."""
    if isinstance(key, rsa.RSAPrivateKey):
        return RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return ECAlgorithm.to_jwk(key.public_key(), as_dict=True)


def key_method(name: str, alg: str, make: Callable[[], PrivateKey], work: Path) -> Method:
    """private_key_jwt with a fresh key of `make`; the wrong key is another one of its kind."""
    right, wrong = make(), make()
    kid = f"{name}-1"
    jwk = {**public_jwk(right), "kid": kid, "alg": alg, "use": "sig"}
    paths = {}
    for label, key in (("right", right), ("wrong", wrong)):
        paths[label] = work / f"{name}-{label}.pem"
        paths[label].write_text(pem_of(key), encoding="utf-8")
    common = {"auth_method": "private_key_jwt", "key_id": kid, "signing_alg": alg}
    return Method(
        name=f"private_key_jwt {alg}",
        client_id=f"{name}-client",
        auth={**common, "private_key": str(paths["right"])},
        registered={"method": "private_key_jwt", "jwks": {"keys": [jwk]}},
        wrong={**common, "private_key": str(paths["wrong"])},
        material=pem_lines(pem_of(right)) + pem_lines(pem_of(wrong)),
    )


def secret_method(method: str, secret: str) -> Method:
    wrong = secret[::-1]
    return Method(
        name=method,
        client_id=f"{method.replace('_', '-')}-client",
        auth={"auth_method": method, "client_secret": secret},
        registered={"method": method, "secret": secret},
        wrong={"auth_method": method, "client_secret": wrong},
        material=[secret, wrong],
    )


def methods(work: Path) -> list[Method]:
    def rsa_key() -> PrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def ec_key() -> PrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    return [
        secret_method("client_secret_basic", "b:sic/s3cret+with %reserved&=chars?#é"),
        secret_method("client_secret_post", "p0st/s3cret+with %reserved&=chars?#é"),
        secret_method("client_secret_jwt", "hs256-shared-secret-of-at-least-32-bytes!"),
        key_method("rs", "RS256", rsa_key, work),
        key_method("es", "ES256", ec_key, work),
    ]


# --- one harvest ----------------------------------------------------------------------------------


@dataclass
class Run:
    exit: int | None  # None: killed after TIMEOUT
    output: str  # stdout and stderr
    records: list[Any] | None  # None: no output file
    token_requests: int


def text(part: str | bytes | None) -> str:
    return part.decode(errors="replace") if isinstance(part, bytes) else part or ""


def server_stats(base: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{base}/_stats", timeout=10) as answer:  # noqa: S310 (loopback)
        stats: dict[str, int] = json.load(answer)
        return stats


def harvest(base: str, method: Method, auth: dict[str, Any], run_dir: Path) -> Run:
    """The real CLI with `auth`; secrets go through ${VAR} as a config should hold them."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    auth_keys = dict(auth)
    if "client_secret" in auth_keys:
        env["BENCH_CLIENT_SECRET"] = auth_keys["client_secret"]
        auth_keys["client_secret"] = "${BENCH_CLIENT_SECRET}"
    config = {
        "source": {"url": f"{base}/items", "records": "items"},
        "auth": {
            "type": "client_credentials",
            "token_url": f"{base}/oauth/token",
            "client_id": method.client_id,
            **auth_keys,
        },
        "pagination": {
            "style": "offset",
            "offset_param": "offset",
            "limit_param": "limit",
            "page_size": 100,
            "total": "body:total",
        },
        "concurrency": {"workers": 8},
        "output": {"path": "out.jsonl"},
    }
    cfg = run_dir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    before = server_stats(base)["token_requests"]
    argv = [sys.executable, "-m", "harvester", str(cfg), "--stats-json", "stats.json"]
    try:
        done = subprocess.run(  # noqa: S603 (our own CLI)
            [*argv, "--progress", "none"],
            cwd=run_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        code: int | None = done.returncode
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code, output = None, "".join(text(part) for part in (exc.stdout, exc.stderr))
    (run_dir / "output.txt").write_text(output, encoding="utf-8")
    out = run_dir / "out.jsonl"
    records = None
    if out.exists():
        text = out.read_text("utf-8")
        records = [loads_exact(line) for line in text.split("\n") if line]  # U+2028 is data
    return Run(code, output, records, server_stats(base)["token_requests"] - before)


# --- verdicts -------------------------------------------------------------------------------------


def typed(value: Any) -> Any:
    """`value` with each number's type beside it: 1 and 1.0 differ, as in the file."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    return (type(value).__name__, value)


def success_verdict(run: Run, expected: list[Any]) -> str:
    if run.exit != 0:
        lines = run.output.strip().splitlines()
        return f"exit {run.exit}: {lines[-1] if lines else '(no output)'}"
    if run.records is None:
        return "exit 0 without an output file"
    if [typed(record) for record in run.records] != [typed(record) for record in expected]:
        return f"exit 0, WRONG FILE: {len(run.records)} records of {len(expected)}, or altered"
    return "ok"


def failure_verdict(run: Run, method: Method) -> str:
    shown = [item for item in method.material if item in run.output]
    if shown:
        return f"LEAK: {len(shown)} secret or key piece(s) in the output"
    if run.exit == 0 or run.exit is None:
        return f"exit {run.exit} with a wrong credential"
    if run.records is not None:
        return "a file at the output path"
    if "invalid_client" not in run.output:
        lines = run.output.strip().splitlines()
        return f"no invalid_client: {lines[-1] if lines else '(no output)'}"
    return "ok"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2345, help="dataset size (2345)")
    args = parser.parse_args()
    if not SERVER_PY.exists():
        sys.exit(f"{SERVER_PY} is missing: run `make third-party` first (it installs authlib)")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    lines = [dumps_exact(record) for record in seeded_records(args.records)]
    expected = [loads_exact(line) for line in lines]
    data = WORK / "items.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cases = methods(WORK)
    registry = WORK / "clients.json"
    registry.write_text(json.dumps({m.client_id: m.registered for m in cases}), encoding="utf-8")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = WORK / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(  # noqa: S603 (our own app)
            [str(SERVER_PY), str(APPS / "authlib_app.py"), str(data), str(registry), str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    rows = []
    try:
        wait_ready(server, f"{base}/_stats", log)
        for method in cases:
            run_dir = WORK / method.name.replace(" ", "-")
            good = harvest(base, method, method.auth, run_dir / "right")
            bad = harvest(base, method, method.wrong, run_dir / "wrong")
            verdicts = (success_verdict(good, expected), failure_verdict(bad, method))
            rows.append((method.name, *verdicts, f"{good.token_requests} / {bad.token_requests}"))
    finally:
        server.terminate()
        server.wait(timeout=10)

    header = ("method", "success", "failure", "token requests")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(f"authlib AuthorizationServer, {args.records} records, offset/limit 100, 8 workers")
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0 if all(row[1] == row[2] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
