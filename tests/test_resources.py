"""Several resources and parent -> child fan-out, through the real CLI against the demo API."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from harvester.checkpoint import checkpoint_path
from harvester.demo import DemoServer
from harvester.demo.users import expected_order, orders_of

from .conftest import SECRET, assert_one_clear_line, expected_bytes, run_cli
from .test_crash import cli, harvest

PAGED = {
    "style": "page",
    "page_size": 10,
    "page_param": "page",
    "page_size_param": "page_size",
    "first_page": 1,
    "total_pages": "body:total_pages",
}


def defaults(url: str, **concurrency: Any) -> dict[str, Any]:
    return {
        "auth": {
            "type": "client_credentials",
            "token_url": f"{url}/oauth2/token",
            "client_id": "demo",
            "client_secret": SECRET,
            "scope": "read",
        },
        "concurrency": {"workers": 4, **concurrency},
        "retry": {"max_attempts": 2, "initial_backoff": 0, "max_backoff": 0},
        "source": {"records": "items"},
    }


def users_orders(url: str, folder: Path, **orders: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": "users",
            "source": {"url": f"{url}/users"},
            "pagination": {"style": "offset", "page_size": 50, "total": "body:total"},
            "output": {"path": str(folder / "users.jsonl")},
        },
        {
            "name": "orders",
            "parent": "users",
            "source": {"url": f"{url}/users/{{users.id}}/orders", "records": "results"},
            "pagination": PAGED,
            "output": {"path": str(folder / "orders.jsonl")},
            **orders,
        },
    ]


def write(folder: Path, url: str, resources: list[dict[str, Any]], **concurrency: Any) -> Path:
    path = folder / "config.yaml"
    document = {"defaults": defaults(url, **concurrency), "resources": resources}
    path.write_text(yaml.safe_dump(document))
    return path


def expected_orders(users: range, include: bool = True, skip_every: int | None = None) -> bytes:
    from harvester.demo import DemoSettings

    settings = DemoSettings()
    lines = []
    for user in users:
        if skip_every and user % skip_every == skip_every - 1:
            continue
        for j in range(orders_of(user, settings)):
            order = expected_order(user, j)
            lines.append(orjson.dumps({"_users_id": user, **order} if include else order) + b"\n")
    return b"".join(lines)


async def test_several_resources_share_one_token_and_each_writes_its_own(
    demo: DemoServer, tmp_path: Path
) -> None:
    resources = [
        {"name": "items", "source": {"url": f"{demo.url}/items"}, "output": {"path": "items.jsonl"}}
        | {"pagination": {"style": "offset", "page_size": 50, "total": "body:total"}},
        {
            "name": "pages",
            "source": {"url": f"{demo.url}/pages", "records": "results"},
            "pagination": PAGED,
            "output": {"path": "pages.jsonl"},
        },
        {
            "name": "cursor",
            "source": {"url": f"{demo.url}/cursor", "records": "data"},
            "pagination": {
                "style": "cursor",
                "page_size": 100,
                "limit_param": "limit",
                "cursor_param": "cursor",
                "next_cursor": "body:next_cursor",
            },
            "output": {"path": "cursor.jsonl"},
        },
    ]
    config = write(tmp_path, demo.url, resources)
    result = await run_cli(str(config), "--progress", "none")

    assert result.code == 0, result.stderr
    for name in ("items", "pages", "cursor"):
        assert (tmp_path / f"{name}.jsonl").read_bytes() == expected_bytes(1_000), name
        assert f"resource {name}" in result.stdout
    assert "total" in result.stdout and "records      3,000" in result.stdout
    assert demo.stats.token_requests == 1  # one token manager for every resource


async def test_resource_runs_a_subset_and_an_unknown_name_is_exit_2(
    demo: DemoServer, tmp_path: Path
) -> None:
    demo.settings.users = 30
    config = write(tmp_path, demo.url, users_orders(demo.url, tmp_path))

    unknown = await run_cli(str(config), "--resource", "order")
    assert unknown.code == 2
    assert_one_clear_line(unknown, "--resource", "'order'", "users, orders")

    alone = await run_cli(str(config), "--resource", "orders", "--progress", "none")
    assert alone.code == 1
    assert_one_clear_line(alone, "resource orders", "users.jsonl", "run the parent resource first")

    users = await run_cli(str(config), "--resource", "users", "--progress", "none")
    assert users.code == 0, users.stderr
    assert not (tmp_path / "orders.jsonl").exists()
    orders = await run_cli(str(config), "--resource", "orders", "--progress", "none")
    assert orders.code == 0, orders.stderr
    assert (tmp_path / "orders.jsonl").read_bytes() == expected_orders(range(30), include=False)


async def test_children_come_in_parent_order_then_page_order(
    demo: DemoServer, tmp_path: Path
) -> None:
    demo.settings.users = 120  # some users have no orders, some three pages of them
    resources = users_orders(demo.url, tmp_path, include_from_parent=["id"])
    config = write(tmp_path, demo.url, resources)
    result = await run_cli(str(config), "--progress", "none", "--stats-json", str(tmp_path / "s"))

    assert result.code == 0, result.stderr
    users = b"".join(orjson.dumps({"id": u, "name": f"user-{u:05d}"}) + b"\n" for u in range(120))
    assert (tmp_path / "users.jsonl").read_bytes() == users
    assert (tmp_path / "orders.jsonl").read_bytes() == expected_orders(range(120))
    assert demo.stats.token_requests == 1
    stats = orjson.loads((tmp_path / "s").read_bytes())
    assert stats["resources"]["users"]["records"] == 120
    assert stats["records"] == 120 + stats["resources"]["orders"]["records"]


@pytest.mark.parametrize("parent_output", ["users.csv", "users.jsonl.gz"])
async def test_a_parent_written_in_another_format_keeps_a_json_lines_copy_for_its_children(
    demo: DemoServer, tmp_path: Path, parent_output: str
) -> None:
    demo.settings.users = 45
    resources = users_orders(demo.url, tmp_path, include_from_parent=["id"])
    resources[0]["output"]["path"] = str(tmp_path / parent_output)
    config = write(tmp_path, demo.url, resources)
    result = await run_cli(str(config), "--progress", "none")

    assert result.code == 0, result.stderr
    assert (tmp_path / parent_output).exists()
    users = b"".join(orjson.dumps({"id": u, "name": f"user-{u:05d}"}) + b"\n" for u in range(45))
    assert (tmp_path / f"{parent_output}.records.jsonl").read_bytes() == users
    assert (tmp_path / "orders.jsonl").read_bytes() == expected_orders(range(45))
    again = await run_cli(str(config), "--resource", "orders", "--progress", "none")
    assert again.code == 0, again.stderr  # alone, over the copy the parent left


async def test_on_missing_skip_leaves_out_the_parents_answering_404(
    demo: DemoServer, tmp_path: Path
) -> None:
    demo.settings.users, demo.settings.missing_users_every = 40, 7
    resources = users_orders(demo.url, tmp_path, on_missing="skip", include_from_parent=["id"])
    result = await run_cli(str(write(tmp_path, demo.url, resources)), "--progress", "none")

    assert result.code == 0, result.stderr
    expected = expected_orders(range(40), skip_every=7)
    assert (tmp_path / "orders.jsonl").read_bytes() == expected
    assert "5 users records answered 404 and were skipped" in result.output


async def test_on_missing_fail_names_the_parent_and_keeps_nothing_that_looks_complete(
    demo: DemoServer, tmp_path: Path
) -> None:
    demo.settings.users, demo.settings.missing_users_every = 40, 7
    config = write(tmp_path, demo.url, users_orders(demo.url, tmp_path))
    result = await run_cli(str(config), "--progress", "none")

    assert result.code == 1
    assert_one_clear_line(result, "resource orders", "users.id=6", "status 404", "on_missing: skip")
    assert not (tmp_path / "orders.jsonl").exists()
    assert (tmp_path / "users.jsonl").exists()  # complete before its child started


async def test_a_failing_resource_stops_the_others_and_a_rerun_resumes_them(
    demo: DemoServer, tmp_path: Path
) -> None:
    # /pages breaks at its 51st page (half a page where a whole one is planned); meanwhile the
    # cursor chain, one page after another, has written some of its pages.
    demo.settings.latency, demo.settings.short_page_at = 0.005, 500
    resources = [
        {
            "name": "cursor",
            "source": {"url": f"{demo.url}/cursor", "records": "data"},
            "pagination": {
                "style": "cursor",
                "page_size": 5,
                "limit_param": "limit",
                "cursor_param": "cursor",
                "next_cursor": "body:next_cursor",
            },
            "output": {"path": "cursor.jsonl", "checkpoint_every": 0.02},
        },
        {
            "name": "broken",
            "source": {"url": f"{demo.url}/pages", "records": "results"},
            "pagination": PAGED,
            "output": {"path": "broken.jsonl"},
        },
    ]
    config = write(tmp_path, demo.url, resources, workers=2, stop_grace=1)
    result = await run_cli(str(config), "--progress", "none")

    assert result.code == 1
    assert_one_clear_line(result, "resource broken", "page 50", "/pages", "records would be lost")
    cursor = tmp_path / "cursor.jsonl"
    assert not cursor.exists() and checkpoint_path(cursor).exists()
    demo.settings.short_page_at = None
    rerun = await run_cli(str(config), "--progress", "none")
    assert rerun.code == 0, rerun.stderr
    assert "resumed" in rerun.stdout
    assert cursor.read_bytes() == expected_bytes(1_000)


async def test_a_fan_out_killed_mid_run_resumes_to_the_same_bytes(
    demo: DemoServer, tmp_path: Path
) -> None:
    demo.settings.users, demo.settings.latency = 200, 0.002
    resources = users_orders(demo.url, tmp_path, include_from_parent=["id"])
    resources[1]["output"]["checkpoint_every"] = 0.02
    config = write(tmp_path, demo.url, resources)
    orders = tmp_path / "orders.jsonl"
    resumed = 0
    for requests in (60, 90, 120):  # users takes 4 requests: every kill lands in the fan-out
        async with cli(config) as run:
            await run.signal_after(demo, requests, signal.SIGKILL)
            code, stderr = await run.ended()
        assert code == -signal.SIGKILL, stderr
        if checkpoint_path(orders).exists():
            resumed += 1
            saved = orjson.loads(checkpoint_path(orders).read_bytes())["sink"]
            assert 0 < saved["parents"] < 200
    users, resuming = demo.stats.endpoints["/users"], checkpoint_path(orders).exists()
    await harvest(config)
    assert resumed >= 1
    assert orders.read_bytes() == expected_orders(range(200))
    if resuming:  # over the users the earlier run completed: not fetched again
        assert demo.stats.endpoints["/users"] == users
    assert not checkpoint_path(orders).exists()


@pytest.mark.parametrize("flag", ["--print-config"])
async def test_print_config_shows_each_resource_with_secrets_masked(
    demo: DemoServer, tmp_path: Path, flag: str
) -> None:
    config = write(tmp_path, demo.url, users_orders(demo.url, tmp_path))
    result = await run_cli(str(config), flag, "--workers", "3")

    assert result.code == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert [r["name"] for r in shown["resources"]] == ["users", "orders"]
    assert {r["concurrency"]["workers"] for r in shown["resources"]} == {3}
    assert SECRET not in result.stdout


@pytest.mark.parametrize("example", ["resources", "users-orders"])
async def test_the_examples_harvest_every_record(
    demo: DemoServer, tmp_path: Path, example: str
) -> None:
    # In a folder of their own: their ../out/ is then tmp_path/out.
    source = Path(__file__).parent.parent / "examples" / f"{example}.yaml"
    (tmp_path / "examples").mkdir()
    config = tmp_path / "examples" / source.name
    config.write_text(source.read_text())
    demo.settings.users = 100
    env = {**os.environ, "HARVESTER_DEMO_URL": demo.url, "HARVESTER_CLIENT_SECRET": SECRET}
    result = await run_cli(str(config), "--progress", "none", env=env)

    assert result.code == 0, result.stderr
    assert demo.stats.token_requests == 1
    out = tmp_path / "out"
    if example == "resources":
        for name in ("items", "pages", "cursor"):
            assert (out / f"{name}.jsonl").read_bytes() == expected_bytes(1_000)
    else:
        assert (out / "orders.jsonl").read_bytes() == expected_orders(range(100))


async def test_a_parent_record_without_the_placeholder_field_is_one_line(
    demo: DemoServer, tmp_path: Path
) -> None:
    demo.settings.users = 5
    resources = users_orders(demo.url, tmp_path)
    resources[1]["source"]["url"] = f"{demo.url}/users/{{users.uid}}/orders"
    result = await run_cli(str(write(tmp_path, demo.url, resources)), "--progress", "none")

    assert result.code == 1
    assert_one_clear_line(result, "resource orders", "users.jsonl", "record 0 of users", "'uid'")
