"""A finished shard's manifest: what it holds, so that a rerun can skip it and `harvester merge`
can check the shards fit together before it concatenates them.

    <shard file>.manifest.json
    {"version": 1, "dataset": {...}, "shard": K, "shards": N, "unit": "pages" or "windows",
     "slice": [start, end], "of": units, "total": records or null, "page_size": n,
     "records": [first, end] or null, "count": records, "bytes": n, "sha256": hex,
     "harvested_at": ISO 8601 UTC}

`dataset` is the dataset's fingerprint (harvester.checkpoint.dataset_fingerprint, which holds no
secret): every shard of one harvest has the same, and merge checks it against the config's.
Written atomically after the shard's file is in place, and removed before any harvest of the
shard begins (--fresh too): a shard killed in between is harvested again by its rerun, never
taken for finished, and a shard with a partial file or a checkpoint beside it is unfinished
whatever manifest it has.
"""

from __future__ import annotations

import builtins
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from harvester.checkpoint import checkpoint_path, fsync_folder
from harvester.output import create_private
from harvester.shard import Unit
from harvester.sink import part_path

VERSION = 1
CHUNK = 1 << 20  # bytes read at a time to hash or copy a shard


@dataclass(frozen=True, kw_only=True)
class Manifest:
    dataset: dict[str, Any]
    shard: int
    shards: int
    unit: Unit  # "pages" (known total) or "windows" (partition windows of a chain style)
    slice: tuple[int, int]
    of: int
    total: int | None
    page_size: int
    records: tuple[int, int] | None  # [first, end) in the whole dataset, where it is known
    count: int
    bytes: int
    sha256: str
    harvested_at: str  # when the shard finished, ISO 8601 UTC: merge says how far apart
    version: int = VERSION

    def to_json(self) -> builtins.bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def manifest_path(shard_file: Path) -> Path:
    return shard_file.with_name(shard_file.name + ".manifest.json")


def file_digest(path: Path) -> tuple[int, str]:
    """(bytes, sha256 hex) of the file at `path`."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def write_manifest(shard_file: Path, manifest: Manifest) -> None:
    """The manifest beside `shard_file`, atomically: a reader sees the whole or none."""
    write_atomically(manifest_path(shard_file), manifest.to_json())


def write_atomically(path: Path, data: bytes) -> None:
    """`data` at `path`, whole or not at all, owner-only, durable once this returns."""
    temporary = path.with_name(path.name + ".tmp")
    with create_private(temporary) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_folder(path.parent)


def read_manifest(shard_file: Path) -> Manifest | None:
    """The manifest beside `shard_file`; None if there is none. ValueError if it is unreadable
    or not a manifest of this version."""
    path = manifest_path(shard_file)
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != VERSION:
        raise ValueError(f"{path} is not a version {VERSION} shard manifest")
    try:
        records = document["records"]
        return Manifest(
            **{
                **document,
                "slice": tuple(document["slice"]),
                "records": None if records is None else tuple(records),
            }
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a shard manifest ({exc})") from None


def finished_shard(shard_file: Path, dataset: dict[str, Any]) -> Manifest | None:
    """The manifest of a finished shard of `dataset` whose file is in place with its size;
    None where the shard is still to be harvested (no manifest, another dataset, a file
    missing or changed)."""
    try:
        manifest = read_manifest(shard_file)
    except ValueError:
        return None
    if manifest is None or manifest.dataset != dataset or in_progress(shard_file):
        return None
    try:
        size = shard_file.stat().st_size
    except OSError:
        return None
    return manifest if size == manifest.bytes else None


def in_progress(shard_file: Path) -> bool:
    """Whether a harvest of the shard is under way or was cut short: its partial file or its
    checkpoint is there."""
    return part_path(shard_file).exists() or checkpoint_path(shard_file).exists()


def plain(value: dict[str, Any]) -> dict[str, Any]:
    """`value` as it reads back from JSON (tuples as lists): comparable with a manifest's."""
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(value))
    return loaded
