"""harvester merge: the shards of one harvest checked against each other, then put together.

Every manifest must be there and agree: the same dataset as the config describes, the same
count of shards, total and page size, and slices that follow on from one another without a gap
or an overlap from the first unit to the last. No shard may be under way (its lock held) or cut
short (its partial file or checkpoint there). Each shard's bytes are checked against its
manifest's sha256 as they are copied. The merged file is written to `<output>.part` and renamed
into place, as a run finishes, under the output's lock; only then are the shards removed
(unless kept). JSON Lines shards concatenate to exactly the bytes of one uninterrupted run.

A merge killed after its rename, while removing the shards, is finished by the next: it leaves
`<output>.merged.json` (what was merged, the output's sha256) from before the rename until the
last shard is gone, and a rerun that finds the output matching it only removes what is left.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import orjson

from harvester.checkpoint import checkpoint_path, dataset_fingerprint, differences, fsync_folder
from harvester.config import Config
from harvester.errors import OutputError, OutputLocked, ShardError
from harvester.manifest import (
    CHUNK,
    Manifest,
    file_digest,
    in_progress,
    manifest_path,
    plain,
    read_manifest,
    write_atomically,
)
from harvester.output import OutputLock, claim, create_private, keep_mode, remove_tree
from harvester.shard import check_shardable, shard_path
from harvester.sink import part_path

__all__ = ["Merged", "merge_shards"]

log = logging.getLogger("harvester")


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

    ShardError (exit 2) naming the first shard that is missing, under way or does not fit; the
    output is then untouched. With `keep`, the shard files and manifests stay (else they are
    removed once the merged file is in place).
    """
    check_shardable(config, max_records=None)
    if count < 1:
        raise ShardError("--shards must be at least 1", shard=f"?/{count}", path="--shards")
    dataset = plain(dataset_fingerprint(config))
    output = Path(config.output.path)
    files = [shard_path(output, k, count) for k in range(count)]
    record = _record_path(output)
    with claim(config.output.path, own_files=lambda o: [part_path(o), record], warn=log.warning):
        done = _merged_before(record, output, dataset, count)
        if done is not None:
            log.info("%s was merged already: removing the shards left behind", output)
            _remove(files, record, keep=keep)
            return done
        with _locked(files, count):
            manifests = [_checked(file, k, count, dataset) for k, file in enumerate(files)]
            _check_fit(manifests, files)
            merged = _concatenate(files, manifests, output, record, dataset)
            _remove(files, record, keep=keep)
    first, last = min(m.harvested_at for m in manifests), max(m.harvested_at for m in manifests)
    apart = datetime.fromisoformat(last) - datetime.fromisoformat(first)
    log.info(
        "merged %d shards (harvested within %s of each other): %s records, %s bytes into %s "
        "(sha256 %s)",
        count,
        apart,
        f"{merged.records:,}",
        f"{merged.bytes:,}",
        output,
        merged.sha256,
    )
    return merged


def _record_path(output: Path) -> Path:
    return output.with_name(output.name + ".merged.json")


def _merged_before(
    record: Path, output: Path, dataset: dict[str, object], count: int
) -> Merged | None:
    """What an earlier merge of the same shards wrote, if its output is in place unchanged; a
    record that does not match the output is an earlier merge killed before its rename."""
    try:
        said = orjson.loads(record.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if said.get("dataset") != dataset or said.get("shards") != count or not output.exists():
        remove_tree(record)
        return None
    size, sha256 = file_digest(output)
    if (size, sha256) != (said.get("bytes"), said.get("sha256")):
        remove_tree(record)
        return None
    return Merged(output, int(said["records"]), size, count, sha256)


@contextlib.contextmanager
def _locked(files: list[Path], count: int) -> Iterator[None]:
    """Every shard's lock, held while it is checked and copied: a shard being harvested (or
    harvested again) now is named, never merged half-written."""
    with contextlib.ExitStack() as stack:
        for index, file in enumerate(files):
            try:
                stack.enter_context(OutputLock(file, warn=log.warning))
            except OutputLocked as exc:
                raise ShardError(
                    f"is being harvested now (by pid {exc.pid} on {exc.host}); merge once it "
                    "has finished",
                    shard=f"{index}/{count}",
                    path=str(file),
                ) from None
        yield


def _checked(file: Path, index: int, count: int, dataset: dict[str, object]) -> Manifest:
    shard = f"{index}/{count}"

    def unfit(message: str, path: Path | None = None) -> ShardError:
        return ShardError(message, shard=shard, path=str(path or manifest_path(file)))

    try:
        manifest = read_manifest(file)
    except ValueError as exc:
        raise unfit(str(exc)) from None
    if in_progress(file):
        raise unfit(
            f"its harvest was cut short ({part_path(file).name} or its checkpoint is there); "
            f"run harvester CONFIG --shard {shard} again to finish it"
        )
    if manifest is None:
        raise unfit(
            f"has no manifest: it has not finished; run harvester CONFIG --shard {shard} "
            f"(a rerun resumes from its checkpoint){_other_counts(file, count)}"
        )
    if (manifest.shard, manifest.shards) != (index, count):
        raise unfit(f"its manifest says shard {manifest.shard}/{manifest.shards}")
    if manifest.dataset != dataset:
        changed = ", ".join(differences(manifest.dataset, dataset)) or "the dataset"
        raise unfit(
            f"was harvested with another config ({changed}); harvest it again with this one "
            f"(--shard {shard} --fresh)"
        )
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise unfit(
            f"its file is missing ({exc.strerror}); harvest it again (--shard {shard} --fresh)",
            file,
        ) from None
    if size != manifest.bytes:
        raise unfit(
            f"holds {size:,} bytes where its manifest says {manifest.bytes:,}: it changed since "
            f"it was harvested; harvest it again (--shard {shard} --fresh)",
            file,
        )
    return manifest


def _other_counts(file: Path, count: int) -> str:
    """`; shards of 2 are there: --shards 2?`, where finished shards of another N lie beside."""
    name = manifest_path(file).name
    pattern = glob.escape(re.sub(r"\.shard-\d{5}-of-\d{5}", ".shard-@-of-@", name))
    found = set()
    for path in file.parent.glob(pattern.replace("@", "*")):
        match = re.search(r"\.shard-\d{5}-of-(\d{5})", path.name)
        if match and int(match[1]) != count:
            found.add(int(match[1]))
    return "".join(f"; shards of {n} are there: --shards {n}?" for n in sorted(found))


def _check_fit(manifests: list[Manifest], files: list[Path]) -> None:
    """ShardError unless the slices cover every unit once, in order, on one plan."""
    first = manifests[0]
    expected_start, expected_record = 0, 0
    for manifest, file in zip(manifests, files, strict=True):
        low, end = manifest.slice
        problem = _misfit(manifest, first, expected_start, expected_record)
        if problem is not None:
            raise ShardError(
                problem, shard=f"{manifest.shard}/{manifest.shards}", path=str(manifest_path(file))
            )
        if manifest.records is not None:
            expected_record = manifest.records[1]
        expected_start = end
    last, counted = manifests[-1], sum(m.count for m in manifests)
    problem = None
    if expected_start != first.of:
        problem = f"ends at {first.unit[:-1]} {expected_start} of {first.of}"
    elif first.total is not None and first.unit == "pages" and counted != first.total:
        problem = (
            f"the shards hold {counted:,} records of the {first.total:,} the API advertised: "
            "the data changed between the shards' runs; harvest them again (--fresh)"
        )
    if problem is not None:
        raise ShardError(
            problem, shard=f"{last.shard}/{last.shards}", path=str(manifest_path(files[-1]))
        )


def _misfit(manifest: Manifest, first: Manifest, start: int, record: int) -> str | None:
    """Why `manifest` does not follow on from the shards before it (None: it does)."""
    plan = (manifest.unit, manifest.of, manifest.total, manifest.page_size)
    if plan != (first.unit, first.of, first.total, first.page_size):
        return (
            f"its plan ({_plan(manifest)}) differs from shard 0's ({_plan(first)}): the data "
            "changed between the shards' runs; harvest every shard again (--fresh)"
        )
    if manifest.slice[0] != start:
        return (
            f"starts at {manifest.unit[:-1]} {manifest.slice[0]} where the shard before it "
            f"ended at {start}"
        )
    if manifest.records is not None and manifest.records[0] != record:
        return (
            f"holds records from {manifest.records[0]:,} where the shard before it ended at "
            f"{record:,}"
        )
    return None


def _plan(manifest: Manifest) -> str:
    return f"{manifest.of} {manifest.unit}, total {manifest.total}, page size {manifest.page_size}"


def _concatenate(
    files: list[Path],
    manifests: list[Manifest],
    output: Path,
    record: Path,
    dataset: dict[str, object],
) -> Merged:
    """The shards into `<output>.part`, each checked against its sha256, then renamed onto
    `output` once `record` says what the output holds."""
    part = part_path(output)
    whole = hashlib.sha256()
    try:
        with create_private(part) as handle:
            for file, manifest in zip(files, manifests, strict=True):
                _copy(file, manifest, handle, whole)
            handle.flush()
            os.fsync(handle.fileno())
            keep_mode(handle, output)
        merged = Merged(
            output,
            sum(m.count for m in manifests),
            sum(m.bytes for m in manifests),
            len(manifests),
            whole.hexdigest(),
        )
        said = {**asdict(merged), "path": str(output), "dataset": dataset}
        write_atomically(record, orjson.dumps(said))
        os.replace(part, output)
    except ShardError:
        remove_tree(part)
        raise
    except OSError as exc:
        remove_tree(part)
        raise OutputError(f"cannot write: {exc.strerror}", path=str(output)) from None
    fsync_folder(output.parent)
    return merged


def _copy(file: Path, manifest: Manifest, handle: BinaryIO, whole: hashlib._Hash) -> None:
    """`file` appended to `handle`, hashed into `whole`; ShardError if it is not the bytes its
    manifest's sha256 says."""
    digest = hashlib.sha256()
    with open(file, "rb") as shard:
        while chunk := shard.read(CHUNK):
            digest.update(chunk)
            whole.update(chunk)
            handle.write(chunk)
    if digest.hexdigest() != manifest.sha256:
        shard_name = f"{manifest.shard}/{manifest.shards}"
        raise ShardError(
            "its bytes differ from its manifest's sha256: it changed since it was harvested; "
            f"harvest it again (--shard {shard_name} --fresh)",
            shard=shard_name,
            path=str(file),
        )


def _remove(files: list[Path], record: Path, *, keep: bool) -> None:
    """The shards' files, then the merge's record: the merge is complete."""
    if not keep:
        for file in files:
            for leftover in (file, checkpoint_path(file), manifest_path(file)):
                remove_tree(leftover)
    remove_tree(record)
