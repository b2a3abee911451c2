"""to_arrow() and to_pandas(): the table a Parquet harvest writes, exact, from a temporary file
that is gone afterwards; a clear message naming the extra when pandas or pyarrow is missing."""

from __future__ import annotations

import decimal
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import harvester
from harvester.demo import DemoSettings, expected_records
from harvester.frames import frame_of
from harvester.read import ExactNumber

from .api_helpers import demo_in_thread
from .conftest import SECRET, write_config


@pytest.fixture
def own_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$TMPDIR for this test alone, to see that nothing is left in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_to_arrow_is_the_table_a_parquet_harvest_writes(tmp_path: Path, own_tmpdir: Path) -> None:
    settings = DemoSettings(records=700, client_secret=SECRET, exact_numbers=True)
    with demo_in_thread(settings) as demo:
        config = write_config(tmp_path, demo.url)
        harvester.harvest(config, output=tmp_path / "direct.parquet", progress=False)
        table = harvester.to_arrow(config, progress=False)
    assert table.equals(pq.read_table(tmp_path / "direct.parquet"))
    assert table.num_rows == 700 and table["id"].to_pylist() == list(range(700))
    assert table["tags"].to_pylist() == [r["tags"] for r in expected_records(700)]
    assert list(own_tmpdir.iterdir()) == []  # the temporary Parquet file is gone
    assert not (tmp_path / "out").exists()  # the config's own output is never touched


def test_to_pandas_keeps_every_value(tmp_path: Path) -> None:
    settings = DemoSettings(records=300, client_secret=SECRET, exact_numbers=True)
    with demo_in_thread(settings) as demo:
        config = write_config(tmp_path, demo.url)
        frame = harvester.to_pandas(config, progress=False, max_records=120)
        records = list(harvester.iter_records(config, progress=False, max_records=120))
    expected = expected_records(120)
    assert frame["id"].tolist() == list(range(120))
    assert frame["name"].tolist() == [r["name"] for r in expected]
    assert [list(tags) for tags in frame["tags"]] == [r["tags"] for r in expected]
    # Numbers no double or int64 holds: JSON text in Arrow, values again in pandas.
    for column in ("big", "below", "precise", "huge", "tiny"):
        assert frame[column].dtype == object
        assert frame[column].tolist() == [r[column] for r in records]
        assert all(isinstance(v, ExactNumber) for v in frame[column])
    assert str(frame["precise"][7]) == "1.00000000000000000007"  # every digit


def test_integers_with_nulls_stay_exact_in_pandas() -> None:
    big = 2**62 + 1  # a float64 would round it
    table = pa.table(
        {
            "n": pa.array([1, None, big], pa.int64()),
            "d": pa.array([decimal.Decimal("1.000000000000000000001"), None, None]),
            "s": pa.array([{"a": 1}, None, {"a": 2}]),
        }
    )
    frame = frame_of(table)
    assert frame["n"].dtype == object and frame["n"].tolist() == [1, None, big]
    assert frame["d"][0] == decimal.Decimal("1.000000000000000000001")
    assert frame["s"][0] == {"a": 1}


@pytest.mark.parametrize(
    ("call", "missing", "extra"),
    [("to_arrow", "pyarrow.parquet", "parquet"), ("to_pandas", "pandas", "pandas")],
)
def test_a_missing_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, call: str, missing: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed
    with pytest.raises(ImportError, match=rf"pip install 'harvester\[{extra}\]'"):
        getattr(harvester, call)("config.yaml")


def test_pandas_dataframe_type() -> None:
    assert isinstance(frame_of(pa.table({"a": [1]})), pd.DataFrame)
