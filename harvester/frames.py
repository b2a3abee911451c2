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
from harvester.read import decode_json

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["to_arrow", "to_pandas"]

# One Parquet file, whatever the config's output says (output.columns, if any, still apply).
_AS_PARQUET = {
    "output.format": "parquet",
    "output.compression": None,
    "output.max_records_per_file": None,
}


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
    `object` (Python ints) rather than floats, which would round integers past 2**53; a column
    that is JSON text in the table (numbers past 64 bits or a double's digits, mixed types)
    holds its values again, as stream() gives them (ExactNumber, a Decimal, for those numbers);
    nested objects become dicts, lists numpy arrays. The keywords are harvest()'s.
    """
    _require("pandas", extra="pandas")
    table = to_arrow(
        config, workers=workers, max_records=max_records, progress=progress, overrides=overrides
    )
    return frame_of(table)


def frame_of(table: pa.Table) -> pd.DataFrame:
    """`table` as a DataFrame with every value exact (see to_pandas); `table` is consumed."""
    from harvester.writers.arrow_types import is_json  # imports pyarrow: only once needed

    schema = table.schema
    frame: pd.DataFrame = table.to_pandas(
        integer_object_nulls=True,
        maps_as_pydicts="strict",
        # Arrow's buffers are freed as the columns are converted: the table and the frame are
        # never both whole in memory. The table is unusable afterwards.
        split_blocks=True,
        self_destruct=True,
    )
    del table
    for field in schema:
        if is_json(field):  # JSON text in Arrow, where no one type held every value: values here
            texts = frame[field.name].astype(object)
            frame[field.name] = texts.map(_value, na_action="ignore").astype(object)
    return frame


def _value(text: str) -> Any:
    return decode_json(text.encode())


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
