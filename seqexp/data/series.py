"""A float series of your own: ``data=series data.path=FILE`` (CSV, Parquet, .npy, .npz), or one that ships
inside statsmodels (``data=co2``, ``data=sunspots``), read with no download.

The last ``val_fraction`` of the rows is held out. The columns are scaled by constants fitted on the
training rows alone (seqexp/data/scaling.py), which the DataSpec and so every checkpoint carries: the
loss is computed on the scaled series, and every other metric, figure and forecast is in the data's
units. The model reads the input columns and predicts the next step of the target columns; where the
targets are inputs, it can forecast in closed loop, and the run is scored as forecasters score
(callbacks/forecast_score.py against seqexp/forecasting/baselines.py, over rolling origins in the
held-out rows).
"""

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from seqexp.data.bundled_series import BUNDLED, bundled_frame
from seqexp.data.datamodule import StreamDataModule
from seqexp.data.scaling import fit_scaling
from seqexp.data.series_table import SeriesTable, read_frame, series_table
from seqexp.data.spec import DataSpec
from seqexp.errors import ConfigError
from seqexp.forecasting.baselines import BASELINES
from seqexp.forecasting.scoring import rolling_origins


@dataclass(frozen=True)
class LoadedSeries:
    """A series as read: the table, which of its columns the model reads and predicts, the rows before
    the held-out ones, and the scaling fitted on them (``value = scaled * scale + offset``)."""

    table: SeriesTable
    inputs: tuple[int, ...]
    targets: tuple[int, ...]
    n_train: int
    offset: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class Forecasting:
    """How the held-out rows are forecast and scored: from each origin, ``horizon`` steps in closed loop;
    MASE scaled by the seasonal-naive error of the training rows with period ``season``."""

    horizon: int
    stride: int
    season: int
    baselines: tuple[str, ...]
    sarima_order: tuple[int, int, int]
    sarima_seasonal_order: tuple[int, int, int]


class SeriesDataModule(StreamDataModule):
    """A table's columns as a float series: the training rows, then the held-out rows that follow them."""

    item_name = "rows"
    # The first window of an evaluation warms the state up from zeros (as for the sine).
    default_eval_burn_in = 1
    # Targets other than the inputs are those of the next row (load_splits).
    targets_lead = 1
    forecasting: "Forecasting"

    def __init__(
        self,
        *,
        path: str | None,
        dataset: str | None,
        columns: list[str] | str | None,
        target: list[str] | str | None,
        time_column: str | None,
        missing: str,
        scale: str,
        difference: bool,
        val_fraction: float,
        horizon: int,
        stride: int | None,
        season: int,
        baselines: list[str],
        sarima_order: list[int],
        sarima_seasonal_order: list[int],
        batch_size: int | None,
        seq_length: int,
        eval_burn_in: int | None,
    ) -> None:
        """The arguments are the keys of conf/_series.yaml, whose defaults are there and only there."""
        super().__init__(batch_size, seq_length, eval_burn_in)
        if (path is None) == (dataset is None):
            given = "both are set" if path is not None else "neither is set"
            raise ConfigError(
                "data=series needs one of data.path=FILE (a CSV, TSV, Parquet, .npy or .npz file of your "
                f"series) and data.dataset=NAME (bundled: {', '.join(BUNDLED)}); {given}"
            )
        if dataset is not None and dataset not in BUNDLED:
            raise ConfigError(f"data.dataset={dataset!r} is not bundled: choose one of {', '.join(BUNDLED)}")
        for key, value in (("horizon", horizon), ("season", season), ("stride", stride)):
            if value is not None and value < 1:
                raise ConfigError(f"data.{key}={value} is invalid: it must be an integer >= 1")
        unknown = [name for name in baselines if name not in BASELINES]
        if unknown:
            raise ConfigError(
                f"data.baselines: {unknown[0]!r} is not a baseline; choose from {', '.join(BASELINES)}"
            )
        for key, order in (("sarima_order", sarima_order), ("sarima_seasonal_order", sarima_seasonal_order)):
            if len(order) != 3 or min(order) < 0:
                raise ConfigError(
                    f"data.{key}={list(order)} is invalid: it must be three integers >= 0 (p, d, q)"
                )
        self.path, self.dataset = path, dataset
        self.columns, self.target = column_list(columns), column_list(target)
        self.time_column, self.missing, self.scale_kind = time_column, missing, scale
        self.difference = difference
        self.val_fraction = val_fraction
        self.forecasting = Forecasting(
            horizon,
            horizon if stride is None else stride,
            season,
            tuple(baselines),
            (sarima_order[0], sarima_order[1], sarima_order[2]),
            (sarima_seasonal_order[0], sarima_seasonal_order[1], sarima_seasonal_order[2]),
        )

    # -- the table, read once ----------------------------------------------------------------------
    @cached_property
    def loaded(self) -> LoadedSeries:
        """The file (or bundled series) read, its columns chosen, gaps handled, the scaling fitted."""
        statistical = {"ets", "sarima"} & set(self.forecasting.baselines)
        require_series_packages(statsmodels=self.dataset is not None or bool(statistical))
        if self.path is not None:
            frame, source = read_frame(self.path), f"data.path={self.path!r}"
        else:
            frame, source = bundled_frame(str(self.dataset)), f"data.dataset={self.dataset}"
        table, inputs, targets = series_table(
            frame,
            source,
            columns=self.columns,
            target=self.target,
            time_column=self.time_column,
            missing=self.missing,
        )
        n_val = int(len(table.values) * self.val_fraction)
        n_train = len(table.values) - n_val
        if n_val < 2 or n_train < 2:
            raise ConfigError(
                f"data.val_fraction={self.val_fraction} leaves {n_train} training and {n_val} "
                f"held-out rows of {source}'s {len(table.values)}: each needs at least 2"
            )
        modelled = model_rows(table.values, self.difference)
        offset, scale = fit_scaling(modelled[: n_train - self.shift], self.scale_kind)
        return LoadedSeries(table, inputs, targets, n_train, offset, scale)

    @property
    def table(self) -> SeriesTable:
        """Every column the run uses, in the data's units, gaps handled as ``data.missing`` says."""
        return self.loaded.table

    @property
    def input_columns(self) -> tuple[int, ...]:
        return self.loaded.inputs

    @property
    def target_columns(self) -> tuple[int, ...]:
        return self.loaded.targets

    @property
    def n_train(self) -> int:
        return self.loaded.n_train

    @property
    def forecasts_in_closed_loop(self) -> bool:
        """Whether the model's predictions can be fed back: every target is one of the inputs."""
        return set(self.target_columns) <= set(self.input_columns)

    def origins(self) -> list[int]:
        """The rows where each held-out forecast starts (the first forecast row; the history is before it)."""
        setup = self.forecasting
        return rolling_origins(self.n_train, len(self.table.values), setup.horizon, setup.stride)

    @property
    def shift(self) -> int:
        """Rows of the table before the model's first: a differenced series starts with the first change."""
        return 1 if self.difference else 0

    def model_values(self) -> np.ndarray:
        """What the model reads and predicts, in the data's units: the table, or its changes from row to
        row (row j then stands for the change into table row j + 1)."""
        return model_rows(self.table.values, self.difference)

    def time_axis(self, start: int, stop: int) -> np.ndarray:
        """The timestamps of rows ``start:stop`` (their row numbers where the data has no time column)."""
        times = self.table.times
        return np.arange(start, stop) if times is None else times[start:stop]

    @property
    def time_label(self) -> str:  # type: ignore[override]
        return "row" if self.table.time_column is None else self.table.time_column

    def split_name(self, split: str) -> str:
        return f"{split} split of {self.table.source}"

    def val_times(self, count: int) -> np.ndarray:
        return self.time_axis(self.n_train, self.n_train + count)

    def in_data_units(self, values: torch.Tensor, columns: str) -> torch.Tensor:
        which = list(self.input_columns if columns == "inputs" else self.target_columns)
        scale = torch.as_tensor(self.loaded.scale[which], dtype=values.dtype, device=values.device)
        offset = torch.as_tensor(self.loaded.offset[which], dtype=values.dtype, device=values.device)
        return values * scale + offset

    # -- what a dataset implements ---------------------------------------------------------------
    def load_splits(self) -> dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        scaled = torch.from_numpy((self.model_values() - self.loaded.offset) / self.loaded.scale).float()
        inputs, targets = scaled[:, list(self.input_columns)], scaled[:, list(self.target_columns)]
        split_at = self.n_train - self.shift
        rows = {"train": slice(0, split_at), "val": slice(split_at, None)}
        if self.input_columns == self.target_columns:
            return {split: inputs[span] for split, span in rows.items()}
        # Targets other than the inputs: after reading row t the model is asked for the targets of row t + 1.
        return {split: (inputs[span][:-1], targets[span][1:]) for split, span in rows.items()}

    @property
    def spec(self) -> DataSpec:
        table = self.table
        return DataSpec(
            input_size=len(self.input_columns),
            output_size=len(self.target_columns),
            tokens=False,
            eval_burn_in=self.burn_in,
            columns=table.names,
            inputs=self.input_columns,
            targets=self.target_columns,
            scale=tuple(float(s) for s in self.loaded.scale),
            offset=tuple(float(o) for o in self.loaded.offset),
            differenced=self.difference,
        )


def model_rows(values: np.ndarray, differenced: bool) -> np.ndarray:
    """The rows a model reads: the table's, or their changes, row j then the change into row j + 1."""
    return np.diff(values, axis=0) if differenced else values


def require_series_packages(statsmodels: bool) -> None:
    """ConfigError naming the extra when a package a series needs is missing: pandas, and statsmodels
    for a bundled series or the ETS and SARIMA baselines, before anything is read."""
    needed = ("pandas", "statsmodels") if statsmodels else ("pandas",)
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"a series from a table needs {' and '.join(missing)}, which is not installed: "
            "pip install -e '.[series]'"
        )


def column_list(value: Sequence[str] | str | None) -> list[str] | None:
    """A column or a list of them, as a list (None stays None)."""
    return [value] if isinstance(value, str) else None if value is None else list(value)
