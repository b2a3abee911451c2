"""The dataset as a table: to_arrow() and to_pandas(), behind optional extras.

Both harvest into a temporary Parquet file and read it back, rather than building a table from
a list of dicts: memory stays flat while the harvest runs (the Parquet writer converts and
spools as it goes), and the columns and types are exactly those a Parquet harvest of the same
config writes, with every value exact (harvester.writers' Arrow conversion refuses to alter
one). The file lives in $TMPDIR and is removed once read.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from harvester.api import ConfigSource, Progress, table_harvest

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["to_arrow", "to_pandas"]

# Output keys that shape a file output but not the records; a table has no use for them.
_AS_PARQUET = {"output.format": "parquet", "output.compression": "none"}


def to_arrow(
    config: ConfigSource,
    *,
    workers: int | None = None,
    max_records: int | None = None,
    progress: Progress = "auto",
    overrides: Mapping[str, Any] | None = None,
) -> pa.Table:
    """The whole dataset as a pyarrow Table (`pip install 'harvester[parquet]'`).

    Columns and types as a Parquet harvest writes them: nested objects as structs, lists as
    lists, an integer column widened to double only where every value stays exact, a column
    whose values no one type holds as JSON text. The keywords are harvest()'s; the config's
    output settings are not used. Works in a script and under a running loop (a notebook).
    Nothing is kept between calls: an interrupted call starts over next time.
    """
    parquet = _require("pyarrow.parquet", extra="parquet")
    with tempfile.TemporaryDirectory(prefix="harvester-") as folder:
        path = Path(folder) / "dataset.parquet"
        table_harvest(
            config,
            output=path,
            workers=workers,
            max_records=max_records,
            progress=progress,
            overrides={**(overrides or {}), **_AS_PARQUET},
        )
        table: pa.Table = parquet.read_table(path, memory_map=False)
        return table


def to_pandas(
    config: ConfigSource,
    *,
    workers: int | None = None,
    max_records: int | None = None,
    progress: Progress = "auto",
    overrides: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The whole dataset as a pandas DataFrame (`pip install 'harvester[pandas]'`).

    Built from to_arrow()'s table, keeping values exact: an integer column with nulls becomes
    `object` (Python ints) rather than floats, which would round integers past 2**53; decimals
    (ExactNumber: more digits than a double holds) stay `decimal.Decimal`; nested objects become
    dicts. The keywords are harvest()'s.
    """
    _require("pandas", extra="pandas")
    table = to_arrow(
        config, workers=workers, max_records=max_records, progress=progress, overrides=overrides
    )
    frame: pd.DataFrame = table.to_pandas(integer_object_nulls=True, maps_as_pydicts="strict")
    return frame


def _require(module: str, *, extra: str) -> ModuleType:
    """`module`, imported now (never at `import harvester`); ImportError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = (exc.name or module).split(".")[0]
        raise ImportError(
            f"{module.split('.')[0]} is needed here but is not installed ({name} is missing): "
            f"pip install 'harvester[{extra}]'",
            name=exc.name,
        ) from None
