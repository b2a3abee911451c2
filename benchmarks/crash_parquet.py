"""The crash test (crash_test.py) with Parquet output: the same kills, the same table.

    python benchmarks/crash_parquet.py [--kills 10] [--records 50000] [--seed 1] [--style all]

Checked instead of bytes: every finished output has the same rows and the same schema (field
metadata included) as the uninterrupted harvest's, which holds the demo records exactly; no
checkpoint, working folder or spool is left behind; and at every restart the checkpoint vouches
only for spool segments that are on disk, holding the first records in order. Half the restarts
from a checkpoint get a segment added first, as a kill after a segment closed and before the
checkpoint's rename leaves one (its last bytes torn): the resumed run must drop it. Exits 1 on
any difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from crash_test import Harness, Row, Style, main

from harvester.demo import expected_records
from harvester.sink import part_path


class ParquetHarness(Harness):
    suffix = ".parquet"
    reference: pa.Table | None = None  # the uninterrupted harvest's table

    def check_output(self, output: Path, row: Row) -> None:
        table = pq.read_table(output)
        if self.reference is None:
            if table.to_pylist() != expected_records(self.args.records):
                row.problems.append(f"{output.name}: the uninterrupted harvest is not the data")
            self.reference = table
        if not table.equals(self.reference, check_metadata=True):
            ids = table.column("id").to_pylist() if "id" in table.column_names else []
            self.differs(output, row, ids)
        self.check_leftovers(output, row)

    def vouched(
        self, output: Path, checkpoint: dict[str, Any], style: Style
    ) -> list[tuple[Path, int, int, int]]:
        """The JSON Lines spools of windows 1, 2, ... (window 0 goes through the writer)."""
        part = part_path(output)
        return [v for v in super().vouched(output, checkpoint, style) if v[0] != part]

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
            lines = b'{"id": 0}\n' * 3
            stray.with_suffix(".jsonl").write_bytes(lines[:-5])
            table = pa.table({"id": [-1, -2, -3]})
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer_:
                writer_.write_table(table)
            stray.with_suffix(".arrow").write_bytes(sink.getvalue().to_pybytes()[:-20])


if __name__ == "__main__":
    main(ParquetHarness)
