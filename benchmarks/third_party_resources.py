"""Several resources, parent -> child and incremental runs against json-server 0.17, not the demo.

    make third-party-resources          # after `make third-party` installed the servers
    .venv/bin/python benchmarks/third_party_resources.py [--users 300]

json-server serves a db.json of users, their orders (nested routes: /users/{id}/orders) and a
`changes` table with `updated_at`. The real CLI harvests:
1. users (`_start`/`_limit`, X-Total-Count) and, for each user, its orders (`_page`/`_limit`,
   X-Total-Count) with include_from_parent: the orders file must be every user's orders, in
   user order then order id, each carrying `_users_id`;
2. `changes` incrementally (`_sort=updated_at,id`, `updated_at_gte`), three runs with records
   added and updated between them (the server restarted on the new db.json): in name order the
   folder's files must hold each (id, updated_at) version once and every record's latest version.
Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from third_party import HARVESTER_PY, ROOT, free_port, wait_ready
from third_party_cases import NODE_MODULES

ENTRY = NODE_MODULES / "json-server-017" / "lib" / "cli" / "bin.js"
START = datetime(2025, 1, 1, tzinfo=UTC)


def stamp(seconds: int) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def dataset(users: int) -> dict[str, list[dict[str, Any]]]:
    orders: list[dict[str, Any]] = []
    for user in range(1, users + 1):
        for k in range(user % 7):  # 0 to 6 orders: users with none, users with two pages
            orders.append({"id": len(orders) + 1, "userId": user, "amount": f"{user}.{k:02d}"})
    changes = [{"id": i, "v": 0, "updated_at": stamp(i)} for i in range(1, 501)]
    return {
        "users": [{"id": u, "name": f"user {u}"} for u in range(1, users + 1)],
        "orders": orders,
        "changes": changes,
    }


@contextmanager
def json_server(db: dict[str, Any], work: Path) -> Iterator[str]:
    (work / "db.json").write_text(json.dumps(db), encoding="utf-8")
    port = free_port()
    log = (work / "server.log").open("wb")
    argv = ["node", str(ENTRY), str(work / "db.json"), "--port", str(port), "--host", "127.0.0.1"]
    process = subprocess.Popen(argv, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(process, f"http://127.0.0.1:{port}/users?_limit=1", work / "server.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()  # by its pid: only the process this script started
        process.wait(timeout=10)
        log.close()


def harvest(config: dict[str, Any], work: Path, name: str) -> None:
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    argv = [str(HARVESTER_PY), "-m", "harvester", str(path), "--progress", "none", "--quiet"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"FAILED: {name} exited {done.returncode}: {done.stderr.strip()}")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def fan_out(db: dict[str, Any], work: Path) -> str:
    with json_server(db, work) as base:
        config = {
            "defaults": {"auth": {"type": "none"}, "concurrency": {"workers": 16}},
            "resources": [
                {
                    "name": "users",
                    "source": {"url": f"{base}/users"},
                    "pagination": {
                        "style": "offset",
                        "offset_param": "_start",
                        "limit_param": "_limit",
                        "page_size": 50,
                        "total": "header:X-Total-Count",
                    },
                    "output": {"path": str(work / "users.jsonl")},
                },
                {
                    "name": "orders",
                    "parent": "users",
                    "source": {"url": f"{base}/users/{{users.id}}/orders"},
                    "pagination": {
                        "style": "page",
                        "page_param": "_page",
                        "page_size_param": "_limit",
                        "page_size": 4,
                        "total": "header:X-Total-Count",
                    },
                    "include_from_parent": ["id"],
                    "output": {"path": str(work / "orders.jsonl")},
                },
            ],
        }
        harvest(config, work, "fan-out")
    expected = [{"_users_id": o["userId"], **o} for o in db["orders"]]
    written = lines(work / "orders.jsonl")
    if lines(work / "users.jsonl") != db["users"]:
        return "users differ"
    if written != expected:
        return f"orders differ: {len(written)} written, {len(expected)} expected"
    return f"ok: {len(db['users'])} users, {len(written)} orders in user order"


def incremental(db: dict[str, Any], work: Path) -> str:
    folder = work / "changes"
    clock = 500
    for run in range(3):
        if run:  # 100 records added, 50 updated (15 of them stamped inside the lookback)
            for _ in range(100):
                clock += 1
                db["changes"].append(
                    {"id": len(db["changes"]) + 1, "v": 0, "updated_at": stamp(clock)}
                )
            for k, record in enumerate(db["changes"][run * 37 : run * 37 + 50]):
                record["v"] += 1
                late = k < 15  # committed late: behind the newest value, within the lookback
                record["updated_at"] = stamp(clock - 100 if late else clock + 1 + k)
            clock += 60
        with json_server(db, work) as base:
            config = {
                "source": {
                    "url": f"{base}/changes",
                    "params": {"_sort": "updated_at,id", "_order": "asc,asc"},
                },
                "auth": {"type": "none"},
                "pagination": {
                    "style": "offset",
                    "offset_param": "_start",
                    "limit_param": "_limit",
                    "page_size": 50,
                    "total": "header:X-Total-Count",
                },
                "incremental": {
                    "field": "updated_at",
                    "param": "updated_at_gte",
                    "initial": stamp(0),
                    "lookback": 300,
                    "primary_key": "id",
                },
                "output": {"path": str(folder)},
            }
            harvest(config, work, f"incremental-{run}")
    versions = [
        (r["id"], r["updated_at"]) for f in sorted(folder.glob("*.jsonl")) for r in lines(f)
    ]
    if len(versions) != len(set(versions)):
        return f"a version written twice ({len(versions) - len(set(versions))})"
    latest: dict[int, dict[str, Any]] = {}
    for f in sorted(folder.glob("*.jsonl")):
        for record in lines(f):
            latest[record["id"]] = record
    want = {r["id"]: r for r in db["changes"]}
    if latest != want:
        wrong = [i for i in want if latest.get(i) != want[i]]
        return f"{len(wrong)} records not at their latest version (first: {wrong[:3]})"
    state = (folder / ".harvester-state.json").stat().st_size
    files = len(list(folder.glob("*.jsonl")))
    return (
        f"ok: {len(want)} records, {len(versions)} versions in {files} files, state {state} bytes"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    args = parser.parse_args()
    if not ENTRY.exists():
        raise SystemExit("json-server 0.17 is not installed: run `make third-party` first")
    db = dataset(args.users)
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "parent -> child": fan_out(db, Path(tmp)),
            "incremental, 3 runs": incremental(db, Path(tmp)),
        }
    for name, result in results.items():
        print(f"json-server 0.17  {name:<20} {result}")
    return 0 if all(r.startswith("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
