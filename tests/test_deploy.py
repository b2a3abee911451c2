"""deploy/kubernetes/indexed-job.yaml: valid Kubernetes, and the commands it runs are harvester's.

kubernetes-validate checks every resource against the schemas it bundles (no network, no
cluster), strictly: a misspelt field fails. The containers' arguments go through harvester's own
argument parsers, so a flag renamed in cli.py fails here before it fails in a cluster.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from harvester.cli import _parser
from harvester.config import load_config
from harvester.merge_command import _merge_parser

MANIFEST = Path(__file__).parents[1] / "deploy" / "kubernetes" / "indexed-job.yaml"
INDEX = "$(JOB_COMPLETION_INDEX)"
# backoffLimitPerIndex and podFailurePolicy's FailIndex are GA from 1.33; and the newest bundled.
VERSIONS = ["1.33", kubernetes_validate.utils.latest_version()]


def resources() -> dict[str, dict[str, Any]]:
    """The manifest's resources by kind/name."""
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d is not None]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in documents}


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return dict(only)


def harvest_args(job: dict[str, Any], index: int = 0) -> list[str]:
    """The shard container's arguments as pod `index` gets them."""
    return [arg.replace(INDEX, str(index)) for arg in container(job)["args"]]


def mounts(job: dict[str, Any]) -> dict[str, str]:
    """Where each volume of the Job's pods is mounted, by the claim or config map behind it
    ("emptyDir" for a scratch volume)."""
    pod = job["spec"]["template"]["spec"]
    paths = {m["name"]: m["mountPath"] for m in container(job)["volumeMounts"]}
    found = {}
    for volume in pod["volumes"]:
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        source = (
            claim or volume.get("configMap", {}).get("name") or next(iter(volume.keys() - {"name"}))
        )
        found[source] = paths[volume["name"]]
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_is_valid_kubernetes(version: str) -> None:
    found = resources()
    assert sorted(found) == [
        "ConfigMap/harvester-config",
        "Job/harvester-merge",
        "Job/harvester-shards",
        "PersistentVolumeClaim/harvester-data",
    ]
    for resource in found.values():
        kubernetes_validate.validate(resource, version, strict=True)


def test_strict_validation_catches_a_misspelt_field() -> None:
    job = copy.deepcopy(resources()["Job/harvester-shards"])
    job["spec"]["backoffLimitPerIndx"] = job["spec"].pop("backoffLimitPerIndex")
    with pytest.raises(kubernetes_validate.ValidationError, match="backoffLimitPerIndx"):
        kubernetes_validate.validate(job, VERSIONS[-1], strict=True)


def test_the_shard_command_is_harvesters_for_every_index() -> None:
    job = resources()["Job/harvester-shards"]
    spec, shard = job["spec"], container(job)
    assert spec["completionMode"] == "Indexed"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert shard["command"] == ["harvester"]
    completions, parallelism = spec["completions"], spec["parallelism"]
    assert sum(INDEX in arg for arg in shard["args"]) == 1
    for index in range(completions):
        args = _parser().parse_args(harvest_args(job, index))
        assert args.shard == (index, completions)
        assert args.concurrent_shards == parallelism
    # The index the arguments name comes from the Job controller's annotation.
    (variable,) = [e for e in shard["env"] if e["name"] == "JOB_COMPLETION_INDEX"]
    field = variable["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def test_the_merge_command_is_harvesters_for_the_same_shards() -> None:
    found = resources()
    shards, merge = found["Job/harvester-shards"], found["Job/harvester-merge"]
    command = container(merge)
    assert command["command"] == ["harvester"] and command["args"][0] == "merge"
    args = _merge_parser().parse_args(command["args"][1:])
    assert args.shards == shards["spec"]["completions"]
    harvest = _parser().parse_args(harvest_args(shards))
    assert args.config == harvest.config
    # Created suspended: started before the shards are done, it would only fail.
    assert merge["spec"]["suspend"] is True


def test_the_config_loads_and_its_output_is_on_the_shared_volume(tmp_path: Path) -> None:
    found = resources()
    claim = found["PersistentVolumeClaim/harvester-data"]["spec"]
    assert claim["accessModes"] == ["ReadWriteMany"]  # every pod, on any node, at once
    local = tmp_path / "config.yaml"
    local.write_text(found["ConfigMap/harvester-config"]["data"]["config.yaml"])
    config = load_config(local, environ={"HARVESTER_CLIENT_SECRET": "from-the-secret"})
    named = Path(_parser().parse_args(harvest_args(found["Job/harvester-shards"])).config)
    for job in (found["Job/harvester-shards"], found["Job/harvester-merge"]):
        where = mounts(job)
        assert named == Path(where["harvester-config"]) / "config.yaml"
        assert Path(config.output.path).is_relative_to(where["harvester-data"])
        # A read-only root, but somewhere for a large body to spill to (harvester/body.py).
        assert container(job)["securityContext"]["readOnlyRootFilesystem"] is True
        assert where["emptyDir"] == "/tmp"


def test_the_client_secret_comes_from_a_secret_never_the_config_map() -> None:
    found = resources()
    config = yaml.safe_load(found["ConfigMap/harvester-config"]["data"]["config.yaml"])
    assert config["auth"]["client_secret"] == "${HARVESTER_CLIENT_SECRET}"
    assert not any(kind == "Secret" for kind, _ in (key.split("/") for key in found))
    for job in (found["Job/harvester-shards"], found["Job/harvester-merge"]):
        (variable,) = [e for e in container(job)["env"] if e["name"] == "HARVESTER_CLIENT_SECRET"]
        assert variable["valueFrom"]["secretKeyRef"] == {
            "name": "harvester-client",
            "key": "client-secret",
        }
