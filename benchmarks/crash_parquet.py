"""The crash test's checks of a Parquet run's spool (crash_test.py --format parquet uses them).

Besides what crash_test.py checks of every format (each finished output holds the rows and
schema of the uninterrupted harvest's, nothing is left beside it): at every restart the
checkpoint vouches only for spool segments that are on disk, holding the first records in
order; and half the restarts from a checkpoint get a segment added first, as a kill after a
segment closed and before the checkpoint's rename leaves one (its last bytes torn), which the
resumed run must drop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from crash_test import Harness, Row, Style

from harvester.sink import part_path


class ParquetHarness(Harness):
    def check_checkpoint(
        self, output: Path, checkpoint: dict[str, Any], style: Style, row: Row
    ) -> None:
        super().check_checkpoint(output, checkpoint, style, row)
        folder, writer = part_path(output), checkpoint["sink"].get("writer", {})
        segments = int(writer.get("segments", 0))
        if not folder.is_dir():
            if segments and not output.exists():
                row.problems.append(f"{folder.name} is gone, the checkpoint counts on it")
            return
        ids: list[int] = []
        for number in range(1, segments + 1):
            arrow = folder / f"seg-{number:06d}.arrow"
            try:
                with pa.OSFile(str(arrow)) as source:
                    ids += pa.ipc.open_stream(source).read_all().column("id").to_pylist()
            except (OSError, pa.ArrowInvalid) as exc:
                row.problems.append(f"{arrow.name}: the checkpoint counts on it: {exc}")
                return
        if ids != list(range(len(ids))) or len(ids) != int(writer.get("records", 0)):
            row.problems.append(f"{folder.name}: the segments hold other records than vouched")
        row.cut_back += any(folder.glob(f"seg-{segments + 1:06d}.*"))

    def add_torn_tail(self, output: Path, checkpoint: dict[str, Any], style: Style) -> None:
        super().add_torn_tail(output, checkpoint, style)
        folder, writer = part_path(output), checkpoint["sink"].get("writer", {})
        if folder.is_dir():
            stray = folder / f"seg-{int(writer.get('segments', 0)) + 1:06d}"
            stray.with_suffix(".jsonl").write_bytes(b'{"id":0}\n{"id":1}\n{"id')
            table = pa.table({"id": [-1, -2, -3]})
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as segment:
                segment.write_table(table)
            stray.with_suffix(".arrow").write_bytes(sink.getvalue().to_pybytes()[:-20])
