"""Reading and writing dataset tables (.parquet, .csv) atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.errors import SpmlError
from spml_core.util.atomic import atomic_path

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
from spml_core.datasets.plan import DATASET_SUFFIXES


def write_dataset(df: pd.DataFrame, out: str | os.PathLike[str],
                  metadata: dict[bytes, bytes] | None = None) -> Path:
    """Write a dataset to .parquet or .csv atomically (never a partly written file); `metadata` goes in the Parquet schema."""
    import pyarrow as pa

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in DATASET_SUFFIXES:
        raise SpmlError(f"{out}: unknown dataset format '{out.suffix}' (use .parquet or .csv)")
    table = dataframe_to_arrow(df)
    if metadata and suffix == ".parquet":
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    try:
        with atomic_path(out) as tmp:
            if suffix == ".parquet":
                import pyarrow.parquet as pq

                # Dictionary pages only for dictionary (categorical) columns: on floats they cost
                # size and decoding time (see spml_core.keypoints.sequence).
                dict_cols = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
                pq.write_table(table, tmp, compression="lz4", use_dictionary=dict_cols or False)
            else:

                # CSV has no dictionary type: write categories as their text; missing labels stay empty.
                cols = [col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col
                        for col in table.columns]
                write_csv_blocks(pa.Table.from_arrays(cols, names=table.column_names), tmp)
    except OSError as exc:
        raise SpmlError(f"{out}: cannot write dataset ({exc.strerror or exc})") from None
    return out


CSV_BLOCK_ROWS = 16_384


def write_csv_blocks(table: pa.Table, path: Path, block_rows: int = CSV_BLOCK_ROWS) -> None:
    """Write a table as CSV, formatting blocks of rows on all cores (the same bytes as one pyarrow write).

    Formatting floats as text is the whole cost of a CSV (about 70 ns a value); pyarrow releases
    the GIL while it formats, so blocks format in parallel threads and are written in order, with
    at most two blocks per thread in memory.
    """
    import io
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.csv as pacsv

    starts = range(0, table.num_rows, block_rows)
    threads = min(os.cpu_count() or 1, len(starts))
    if threads < 2:
        pacsv.write_csv(table, path)
        return

    def block(start: int) -> bytes:
        buf = io.BytesIO()
        pacsv.write_csv(table.slice(start, block_rows), buf, pacsv.WriteOptions(include_header=start == 0))
        return buf.getvalue()

    with ThreadPoolExecutor(threads) as pool, open(path, "wb") as fh:
        pending: deque[Any] = deque()
        for start in starts:
            pending.append(pool.submit(block, start))
            if len(pending) >= 2 * threads:
                fh.write(pending.popleft().result())
        while pending:
            fh.write(pending.popleft().result())


def dataframe_to_arrow(df: pd.DataFrame) -> pa.Table:
    """An Arrow table of a DataFrame's columns (no index); NaN becomes null, categoricals dictionaries.

    Numeric columns are converted a dtype group at a time from one 2-D view, which is several
    times faster than ``pa.Table.from_pandas`` on tables with ~140 columns.
    """
    import pandas as pd
    import pyarrow as pa

    arrays: list[Any] = [None] * df.shape[1]
    groups: dict[np.dtype, list[int]] = {}
    for j, dtype in enumerate(df.dtypes):
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            groups.setdefault(dtype, []).append(j)
            continue
        col = df.iloc[:, j]
        if isinstance(dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy()
            values = pa.array(dtype.categories.to_numpy(dtype=object), from_pandas=True)
            arrays[j] = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), values)
        else:
            arrays[j] = pa.array(col, from_pandas=True)
    for dtype, idx in groups.items():
        block = df.iloc[:, idx].to_numpy(dtype=dtype).T  # (columns, rows): each row is one column
        for j, values in zip(idx, block, strict=True):
            arrays[j] = pa.array(values, from_pandas=True)
    return pa.Table.from_arrays(arrays, names=[str(c) for c in df.columns])


def read_dataset(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a dataset written by write_dataset (.parquet or .csv)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise SpmlError(f"{path}: dataset not found")
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise SpmlError(f"{path}: unknown dataset format '{path.suffix}' (use .parquet or .csv)")

