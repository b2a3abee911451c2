"""The several-resources document: defaults merged under each resource, errors located."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from harvester.config import parse_config
from harvester.config.resources import load_resources, parse_resources
from harvester.errors import ConfigError
from harvester.resources import check_resource_args

URL = "https://api.example.com"


def document() -> dict[str, Any]:
    return {
        "defaults": {
            "auth": {"type": "bearer", "token": "t0ken"},
            "concurrency": {"workers": 8},
            "pagination": {"style": "offset", "page_size": 50},
        },
        "resources": [
            {
                "name": "users",
                "source": {"url": f"{URL}/users", "records": "items"},
                "output": {"path": "users.jsonl"},
            },
            {
                "name": "orders",
                "parent": "users",
                "source": {"url": f"{URL}/users/{{users.id}}/orders", "records": "items"},
                "include_from_parent": ["id"],
                "on_missing": "skip",
                "pagination": {"page_size": 20},
                "output": {"path": "orders.jsonl"},
            },
        ],
    }


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_resources(raw, environ={})
    return str(caught.value)


def test_defaults_are_merged_under_each_resource_and_the_resource_wins() -> None:
    users, orders = parse_resources(document(), environ={})

    assert (users.name, orders.name, orders.parent) == ("users", "orders", "users")
    assert users.concurrency.workers == orders.concurrency.workers == 8
    assert (users.pagination.page_size, orders.pagination.page_size) == (50, 20)
    assert orders.pagination.style == "offset"  # merged key by key, not replaced
    assert orders.include_from_parent == ("id",) and orders.on_missing == "skip"


def test_a_single_endpoint_document_is_one_config_as_before() -> None:
    raw = {"source": {"url": f"{URL}/items"}, "output": {"path": "o.jsonl"}}
    assert parse_resources(raw, environ={}) == [parse_config(raw, environ={})]


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (
            lambda d: d["resources"][1]["source"].update(url="ftp://x/{users.id}"),
            ["resources[1].source.url"],
        ),
        (
            lambda d: d["resources"][0].update(auth={"type": "none"}),
            ["resources[0].auth", "under defaults"],
        ),
        (
            lambda d: d["resources"][1].update(concurrency={}),
            ["resources[1].concurrency", "shared"],
        ),
        (
            lambda d: d["resources"][1]["source"].update(timeout=5),
            ["resources[1].source.timeout", "defaults"],
        ),
        (lambda d: d["defaults"]["auth"].update(type="magic"), ["defaults.auth.type"]),
        (lambda d: d["resources"][1].update(name="users"), ["resources[1].name", "resources[0]"]),
        (lambda d: d["resources"][1].update(name="or ders"), ["resources[1].name", "letters"]),
        (
            lambda d: d["resources"][1].update(parent="user"),
            ["resources[1].parent", "orders, users"],
        ),
        (lambda d: d["resources"][0].update(parent="orders"), ["resources[", "cycle"]),
        (
            lambda d: d["resources"][1]["source"].update(url=f"{URL}/{{user.id}}"),
            ["resources[1].source.url", "{users.FIELD}"],
        ),
        (
            lambda d: d["resources"][1]["source"].update(url=f"{URL}/orders"),
            ["resources[1].source.url", "placeholder"],
        ),
        (
            lambda d: d["resources"][0]["output"].update(path="-"),
            ["resources[1].parent", "stream"],
        ),
        (
            lambda d: d["resources"][0].update(on_missing="skip"),
            ["resources[0].on_missing", "parent"],
        ),
        (lambda d: d["resources"][0].pop("output"), ["resources[0].output", "required"]),
        (lambda d: d.update(source={"url": URL}), ["source", "defaults"]),
        (lambda d: d["defaults"].update(name="x"), ["defaults.name", "resource's own"]),
        (lambda d: d.update(resources=[]), ["resources", "list"]),
        (
            lambda d: d["resources"][1].update(on_missing="maybe"),
            ["resources[1].on_missing", "fail, skip"],
        ),
    ],
)
def test_each_error_names_its_key(change: Any, needles: list[str]) -> None:
    raw = copy.deepcopy(document())
    change(raw)
    message = error_of(raw)
    for needle in needles:
        assert needle in message, message


def test_a_parent_key_in_a_single_endpoint_document_is_refused() -> None:
    raw = {"source": {"url": f"{URL}/x"}, "output": {"path": "o.jsonl"}, "parent": "users"}
    assert "parent" in error_of(raw)


def test_relative_output_paths_are_taken_from_the_file_folder(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document()))
    users, orders = load_resources(path, overrides={"concurrency.workers": 3})
    assert users.output.path == str(tmp_path / "users.jsonl")
    assert orders.concurrency.workers == 3  # --workers: the shared budget, for every resource


def test_resource_arguments() -> None:
    configs = parse_resources(document(), environ={})
    assert [c.name for c in check_resource_args(configs, ["orders"], output=None)] == ["orders"]
    with pytest.raises(
        ConfigError, match="--resource: no resource 'nope'; the config names users, orders"
    ):
        check_resource_args(configs, ["nope"], output=None)
    with pytest.raises(ConfigError, match="--output"):
        check_resource_args(configs, [], output="x.jsonl")
    single = parse_resources({"source": {"url": URL}, "output": {"path": "o.jsonl"}}, environ={})
    with pytest.raises(ConfigError, match="single endpoint"):
        check_resource_args(single, ["x"], output=None)


def test_the_single_endpoint_loader_says_where_several_resources_go() -> None:
    with pytest.raises(ConfigError, match="^resources: a document of several resources"):
        parse_config(document(), environ={})


def test_a_key_missing_in_a_resource_is_named_in_that_resource() -> None:
    raw = document()
    raw["resources"][0]["incremental"] = {"field": "updated_at", "param": "since"}
    assert error_of(raw) == "resources[0].incremental.initial: is required"
    raw = document()
    del raw["resources"][0]["source"]
    assert error_of(raw) == "resources[0].source: is required"
    raw = document()
    raw["defaults"]["output"] = {"format": "jsonl"}
    del raw["resources"][0]["output"]
    assert error_of(raw) == "defaults.output.path: is required"


def test_a_misspelt_section_in_a_resource_is_an_unknown_key_not_a_missing_one() -> None:
    raw = document()
    raw["resources"][1]["sourc"] = raw["resources"][1].pop("source")
    assert error_of(raw) == "resources[1].sourc: unknown key (did you mean 'source'?)"


@pytest.mark.parametrize("which", [0, 1])
def test_incremental_on_a_parent_or_a_child_is_refused_up_front(which: int) -> None:
    raw = document()
    raw["resources"][which]["incremental"] = {
        "field": "updated_at",
        "param": "since",
        "initial": "2024-01-01T00:00:00Z",
    }
    raw["resources"][which]["output"] = {"path": f"folder-{which}"}
    assert error_of(raw).startswith(
        f"resources[{which}].incremental: is not supported yet on a parent or a child resource"
    )
