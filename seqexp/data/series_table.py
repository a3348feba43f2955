"""A table of numbers from a user's file (CSV, Parquet, .npy, .npz) or a bundled dataset, made ready for
a float series: the columns chosen, timestamps parsed, gaps handled, every mistake one ``error:`` line that
names the file and the column.

pandas (and pyarrow for Parquet) are imported here only, when a series is read: text and the sine never
need them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pytorch_lightning.utilities import rank_zero_info

from seqexp.data.files import existing_file
from seqexp.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".npy", ".npz")
MISSING = ("interpolate", "drop", "error")


@dataclass(frozen=True)
class SeriesTable:
    """The columns a run uses, as float64 ``values`` of shape (N, columns), in time order."""

    source: str  # the file or dataset, for messages
    names: tuple[str, ...]
    values: np.ndarray
    times: np.ndarray | None  # datetime64, one per row, where data.time_column names one
    time_column: str | None


def read_frame(path: str) -> "pd.DataFrame":
    """The file at ``path`` as a DataFrame; ConfigError for a missing, empty or unreadable file."""
    import pandas as pd

    file = existing_file(path, "data.path", f"a {', '.join(SUFFIXES)} file of your series")
    suffix = file.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(
            f"data.path={path!r} is not a series file this reads: give one of {', '.join(SUFFIXES)}"
        )
    if file.stat().st_size == 0:
        raise ConfigError(f"data.path={path!r} is empty: give a file with a header row and the series")
    try:
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(file, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(file)
        return _array_frame(file)
    except ConfigError:
        raise
    except Exception as error:  # pandas, pyarrow and numpy each raise their own kinds for a bad file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"data.path={path!r} is unreadable as {suffix[1:]}: {reason}") from None


def _array_frame(file: Path) -> "pd.DataFrame":
    """A .npy array (1-D: one column, 2-D: one column per index, named "0", "1", …) or an .npz whose
    1-D arrays are the columns, named by their keys."""
    import pandas as pd

    if file.suffix.lower() == ".npy":
        array = np.load(file, allow_pickle=False)
        if array.ndim not in (1, 2):
            raise ConfigError(
                f"data.path={str(file)!r} holds a {array.ndim}-D array: give 1-D or 2-D (time, column)"
            )
        matrix = array.reshape(len(array), -1)
        return pd.DataFrame({str(i): matrix[:, i] for i in range(matrix.shape[1])})
    with np.load(file, allow_pickle=False) as arrays:
        columns = {name: arrays[name] for name in arrays.files}
    shapes = {name: array.shape for name, array in columns.items()}
    if not columns or any(len(shape) != 1 for shape in shapes.values()) or len(set(shapes.values())) > 1:
        raise ConfigError(
            f"data.path={str(file)!r} must hold 1-D arrays of one length, one per column; it holds {shapes}"
        )
    return pd.DataFrame(columns)


def series_table(
    frame: "pd.DataFrame",
    source: str,
    *,
    columns: Sequence[str] | None,
    target: Sequence[str] | None,
    time_column: str | None,
    missing: str,
) -> tuple[SeriesTable, tuple[int, ...], tuple[int, ...]]:
    """The table of the inputs (``columns``, default every numeric column but the time column) and the
    targets (default the inputs), with ``(input indices, target indices)`` into its columns."""
    import pandas as pd

    if missing not in MISSING:
        raise ConfigError(f"data.missing={missing!r} is invalid: choose one of {', '.join(MISSING)}")
    if frame.shape[0] == 0:
        raise ConfigError(f"{source} has no rows: give a file with the series under its header")
    frame = frame.rename(columns=str)
    times = None
    if time_column is not None:
        _require(frame, source, time_column, "data.time_column")
        times = _parse_times(frame[time_column], source, time_column)
    if columns is None:
        inputs = [
            name
            for name in frame.columns
            if name != time_column and pd.api.types.is_numeric_dtype(frame[name])
        ]
        if not inputs:
            raise ConfigError(
                f"{source} has no numeric column (its columns: {', '.join(frame.columns)}): "
                "name the series' columns with data.columns"
            )
    else:
        inputs = list(columns)
    targets = inputs if target is None else list(target)
    names = inputs + [name for name in targets if name not in inputs]
    for name in names:
        key = "data.columns" if name in inputs else "data.target"
        _require(frame, source, name, key)
        frame[name] = _numeric(frame[name], source, name, key)
    used = frame[names]
    if times is not None:
        used = used.set_index(pd.DatetimeIndex(times))
    used = _fill_gaps(used, source, missing)
    kept_times = used.index.to_numpy() if times is not None else None
    if kept_times is not None:
        _report_spacing(kept_times, source, time_column)
    table = SeriesTable(source, tuple(names), used.to_numpy(dtype=np.float64), kept_times, time_column)
    return table, tuple(names.index(n) for n in inputs), tuple(names.index(n) for n in targets)


def _require(frame: "pd.DataFrame", source: str, name: str, key: str) -> None:
    if name not in frame.columns:
        raise ConfigError(
            f"{key}: {source} has no column {name!r}; its columns are {', '.join(frame.columns)}"
        )


def _numeric(column: "pd.Series", source: str, name: str, key: str) -> "pd.Series":
    """``column`` as floats (empty cells are gaps); ConfigError naming the first value that is no number."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or not (
        pd.api.types.is_numeric_dtype(column) or column.dtype == object
    ):
        raise ConfigError(
            f"{key}: column {name!r} of {source} is not numeric ({column.dtype}): choose numeric columns"
        )
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna() & (column.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ConfigError(
            f"{key}: column {name!r} of {source} is not numeric ({column.iloc[row]!r} in row {row + 1}): "
            "choose numeric columns"
        )
    if numbers.isna().all():
        raise ConfigError(f"{key}: column {name!r} of {source} has no values, all are missing")
    return numbers.astype(np.float64)


def _parse_times(column: "pd.Series", source: str, name: str) -> np.ndarray:
    import pandas as pd

    try:
        times = pd.to_datetime(column)
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"data.time_column: column {name!r} of {source} is not timestamps ({str(error).splitlines()[0]})"
        ) from None
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise ConfigError(f"data.time_column: column {name!r} of {source} has no timestamp in row {row + 1}")
    if not times.is_monotonic_increasing or times.duplicated().any():
        raise ConfigError(
            f"data.time_column: column {name!r} of {source} is not strictly increasing: sort the rows by "
            "time and remove repeated timestamps"
        )
    return times.to_numpy(dtype="datetime64[ns]")


def _fill_gaps(frame: "pd.DataFrame", source: str, missing: str) -> "pd.DataFrame":
    gaps = frame.isna().sum()
    total = int(gaps.sum())
    if total == 0:
        return frame
    per_column = ", ".join(f"{name}: {int(count)}" for name, count in gaps.items() if count)
    if missing == "error":
        name = next(str(n) for n, count in gaps.items() if count)
        row = int(np.flatnonzero(frame[name].isna().to_numpy())[0])
        raise ConfigError(
            f"data.missing=error: column {name!r} of {source} has a missing value in row {row + 1} "
            f"({total} in all; {per_column}): choose data.missing=interpolate or drop"
        )
    if missing == "drop":
        kept = frame.dropna()
        rank_zero_info(
            f"data.missing=drop: {len(frame) - len(kept)} of {len(frame)} rows of {source} dropped for "
            f"{total} missing values ({per_column})"
        )
        return kept
    # By position, not by time: a gap in a regular series is filled from its neighbours alike either way,
    # and an irregular series keeps the model's step as its unit. Gaps at either end take the nearest value.
    filled = frame.reset_index(drop=True).interpolate(method="linear", limit_direction="both")
    filled.index = frame.index
    rank_zero_info(
        f"data.missing=interpolate: {total} missing values of {source} filled linearly ({per_column})"
    )
    return filled


def _report_spacing(times: np.ndarray, source: str, name: str | None) -> None:
    """One log line when the timestamps are not evenly spaced (the model steps by rows, not by time)."""
    import pandas as pd

    steps = np.diff(times)
    if len(steps) == 0:
        return
    usual = np.median(steps.astype("int64"))
    odd = int(np.count_nonzero(steps.astype("int64") != usual))
    if odd:
        rank_zero_info(
            f"data.time_column={name}: {source} is irregularly spaced: {odd} of {len(steps)} steps differ "
            f"from the usual {pd.Timedelta(int(usual), 'ns')} (from {pd.Timedelta(steps.min())} to "
            f"{pd.Timedelta(steps.max())}); the model steps one row at a time"
        )
