"""harvester merge: the shards of one harvest checked against each other, then put together.

Every manifest must be there and agree: the same dataset as the config describes, the same
count of shards, total and page size, and slices that follow on from one another without a gap
or an overlap from the first unit to the last. Each shard's bytes are checked against its
manifest's sha256 as they are copied. The merged file is written to `<output>.part` and renamed
into place, as a run finishes, under the output's lock; only then are the shards removed
(unless kept). JSON Lines shards concatenate to exactly the bytes of one uninterrupted run.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from harvester.checkpoint import checkpoint_path, dataset_fingerprint, differences, fsync_folder
from harvester.config import Config
from harvester.errors import OutputError, ShardError
from harvester.manifest import Manifest, manifest_path, plain, read_manifest
from harvester.output import claim, create_private, keep_mode, remove_tree
from harvester.shard import check_shardable, shard_path
from harvester.sink import part_path

__all__ = ["Merged", "merge_shards"]

log = logging.getLogger("harvester")

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Merged:
    """What merge_shards wrote: the output, its records and bytes, from `shards` shards."""

    path: Path
    records: int
    bytes: int
    shards: int
    sha256: str


def merge_shards(config: Config, *, count: int, keep: bool = False) -> Merged:
    """Check the `count` shards of `config`'s harvest and concatenate them into its output.

    ShardError (exit 2) naming the first shard that is missing or does not fit; the output is
    then untouched. With `keep`, the shard files and manifests stay (else they are removed once
    the merged file is in place).
    """
    check_shardable(config, max_records=None)
    if count < 1:
        raise ShardError("--shards must be at least 1", shard=f"?/{count}", path="--shards")
    dataset = plain(dataset_fingerprint(config))
    files = [shard_path(config.output.path, k, count) for k in range(count)]
    manifests = [_checked(file, k, count, dataset) for k, file in enumerate(files)]
    _check_fit(manifests, files)
    output = Path(config.output.path)
    with claim(config.output.path, own_files=lambda o: [part_path(o)], warn=log.warning):
        digest = _concatenate(files, manifests, output)
    if not keep:
        for file in files:
            for leftover in (manifest_path(file), file, checkpoint_path(file)):
                remove_tree(leftover)
    records = sum(m.count for m in manifests)
    size = sum(m.bytes for m in manifests)
    log.info(
        "merged %d shards: %s records, %s bytes into %s (sha256 %s)",
        count,
        f"{records:,}",
        f"{size:,}",
        output,
        digest,
    )
    return Merged(output, records, size, count, digest)


def _checked(file: Path, index: int, count: int, dataset: dict[str, object]) -> Manifest:
    shard = f"{index}/{count}"
    try:
        manifest = read_manifest(file)
    except ValueError as exc:
        raise ShardError(str(exc), shard=shard, path=str(manifest_path(file))) from None
    if manifest is None:
        raise ShardError(
            f"has no manifest: it has not finished; run harvester CONFIG --shard {shard} "
            "(a rerun resumes from its checkpoint)",
            shard=shard,
            path=str(manifest_path(file)),
        )
    if (manifest.shard, manifest.shards) != (index, count):
        raise ShardError(
            f"its manifest says shard {manifest.shard}/{manifest.shards}",
            shard=shard,
            path=str(manifest_path(file)),
        )
    if manifest.dataset != dataset:
        changed = ", ".join(differences(manifest.dataset, dataset)) or "the dataset"
        raise ShardError(
            f"was harvested with another config ({changed}); harvest it again with this one "
            f"(--shard {shard} --fresh)",
            shard=shard,
            path=str(manifest_path(file)),
        )
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise ShardError(
            f"its file is missing ({exc.strerror}); harvest it again (--shard {shard} --fresh)",
            shard=shard,
            path=str(file),
        ) from None
    if size != manifest.bytes:
        raise ShardError(
            f"holds {size:,} bytes where its manifest says {manifest.bytes:,}: it changed since "
            f"it was harvested; harvest it again (--shard {shard} --fresh)",
            shard=shard,
            path=str(file),
        )
    return manifest


def _check_fit(manifests: list[Manifest], files: list[Path]) -> None:
    """ShardError unless the slices cover every unit once, in order, on one plan."""
    first = manifests[0]
    expected_start, expected_record = 0, 0
    for manifest, file in zip(manifests, files, strict=True):
        shard = f"{manifest.shard}/{manifest.shards}"

        def unfit(message: str, shard: str = shard, file: Path = file) -> ShardError:
            return ShardError(message, shard=shard, path=str(manifest_path(file)))

        plan = (manifest.unit, manifest.of, manifest.total, manifest.page_size)
        if plan != (first.unit, first.of, first.total, first.page_size):
            raise unfit(
                f"its plan ({_plan(manifest)}) differs from shard 0's ({_plan(first)}): the "
                "data changed between the shards' runs; harvest every shard again (--fresh)"
            )
        low, end = manifest.slice
        if low != expected_start:
            raise unfit(
                f"starts at {manifest.unit[:-1]} {low} where the shard before it ended at "
                f"{expected_start}"
            )
        if manifest.records is not None:
            if manifest.records[0] != expected_record:
                raise unfit(
                    f"holds records from {manifest.records[0]:,} where the shard before it "
                    f"ended at {expected_record:,}"
                )
            expected_record = manifest.records[1]
        expected_start = end
    last = manifests[-1]
    if expected_start != first.of:
        raise ShardError(
            f"ends at {first.unit[:-1]} {expected_start} of {first.of}",
            shard=f"{last.shard}/{last.shards}",
            path=str(manifest_path(files[-1])),
        )
    if first.total is not None and last.records is not None and expected_record != first.total:
        raise ShardError(
            f"the shards hold {expected_record:,} records of the {first.total:,} the API "
            "advertised: the data changed between the shards' runs; harvest them again (--fresh)",
            shard=f"{last.shard}/{last.shards}",
            path=str(manifest_path(files[-1])),
        )


def _plan(manifest: Manifest) -> str:
    return f"{manifest.of} {manifest.unit}, total {manifest.total}, page size {manifest.page_size}"


def _concatenate(files: list[Path], manifests: list[Manifest], output: Path) -> str:
    """The shards into `<output>.part`, each checked against its sha256, then renamed onto
    `output`; the merged file's sha256."""
    part = part_path(output)
    whole = hashlib.sha256()
    try:
        with create_private(part) as handle:
            for file, manifest in zip(files, manifests, strict=True):
                digest = hashlib.sha256()
                with open(file, "rb") as shard:
                    while chunk := shard.read(_CHUNK):
                        digest.update(chunk)
                        whole.update(chunk)
                        handle.write(chunk)
                if digest.hexdigest() != manifest.sha256:
                    raise ShardError(
                        "its bytes differ from its manifest's sha256: it changed since it was "
                        f"harvested; harvest it again (--shard {manifest.shard}/{manifest.shards} "
                        "--fresh)",
                        shard=f"{manifest.shard}/{manifest.shards}",
                        path=str(file),
                    )
            handle.flush()
            os.fsync(handle.fileno())
            keep_mode(handle, output)
        os.replace(part, output)
    except ShardError:
        remove_tree(part)
        raise
    except OSError as exc:
        remove_tree(part)
        raise OutputError(f"cannot write: {exc.strerror}", path=str(output)) from None
    fsync_folder(output.parent)
    return whole.hexdigest()
