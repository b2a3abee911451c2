"""`harvester init` against every pagination family of the demo API: what it detected, the
requests the demo counted, and whether the config it wrote harvests the dataset exactly.

    python benchmarks/init_families.py [--records 2345]

Each family is the demo API with switches that leave one way of telling the total or the next
page; init runs through the real CLI (`--pace 0`), then `harvester CONFIG`, and the output's
sha256 is compared with the demo's own dataset.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import yaml

from harvester.demo import DemoSettings, run_demo
from harvester.demo.records import expected_records

FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "offset, total in the body": ("items", {"totals_in": "body"}),
    "offset, X-Total-Count": ("items", {"totals_in": "header"}),
    "Range, Content-Range": ("range-items", {}),
    "page numbers, count": ("pages", {}),
    "cursor in the body": ("cursor", {"next_cursor_in": "body"}),
    "cursor in X-Next-Cursor": ("cursor", {"next_cursor_in": "header"}),
    "next link in the body": ("link", {"next_link_in": "body", "opaque_links": True}),
    "next link in Link": ("link", {"next_link_in": "header", "opaque_links": True}),
    "unknown total": ("stream", {}),
}
SECRET_VARIABLE = "INIT_BENCH_SECRET"


async def _cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    env = {**os.environ, SECRET_VARIABLE: "demo-secret"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harvester", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    return process.returncode or 0, out.decode(), err.decode()


def _detected(config: dict[str, Any]) -> str:
    pagination = config.get("pagination", {})
    style = pagination.get("style", "offset")
    told = [f"{k}={v}" for k, v in pagination.items() if k not in ("style", "page_size")]
    return f"{style} {' '.join(told)} page_size={pagination.get('page_size', 100)}"


async def family(name: str, path: str, switches: dict[str, Any], records: int) -> list[str]:
    dataset = b"".join(orjson.dumps(r) + b"\n" for r in expected_records(records))
    expected = hashlib.sha256(dataset).hexdigest()
    async with run_demo(DemoSettings(records=records, **switches)) as demo:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            flags = ["--token-url", f"{demo.url}/oauth2/token", "--client-id", "demo"]
            flags += ["--client-secret-env", SECRET_VARIABLE, "--pace", "0"]
            before = demo.stats.data_requests + demo.stats.token_requests
            code, _, err = await _cli("init", f"{demo.url}/{path}", *flags, cwd=work)
            served = demo.stats.data_requests + demo.stats.token_requests - before
            if code != 0:
                return [name, path, f"init exit {code}", str(served), "-", err.strip()[-80:]]
            config = yaml.safe_load((work / "config.yaml").read_text())
            harvested, _, err = await _cli("config.yaml", "-q", cwd=work)
            output = work / config["output"]["path"]
            same = output.exists() and hashlib.sha256(output.read_bytes()).hexdigest() == expected
            verdict = "exact" if harvested == 0 and same else f"WRONG (exit {harvested})"
            return [name, path, _detected(config), str(served), verdict, ""]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2345)
    args = parser.parse_args()
    rows = [await family(n, p, s, args.records) for n, (p, s) in FAMILIES.items()]
    print(f"{'family':<26} {'endpoint':<12} {'requests':>8}  {'harvest':<8} detected")
    for name, path, detected, served, verdict, error in rows:
        print(f"{name:<26} /{path:<11} {served:>8}  {verdict:<8} {detected} {error}")
    good = all(row[4] == "exact" and int(row[3]) <= 20 for row in rows)
    print(f"\n{sum(row[4] == 'exact' for row in rows)} of {len(rows)} families exact, "
          f"at most {max(int(row[3]) for row in rows)} requests per init")  # fmt: skip
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
