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

from collections.abc import Sequence
from dataclasses import dataclass

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
            raise ConfigError(
                "data=series needs either data.path=FILE (a CSV, Parquet, .npy or .npz file of your series) "
                "or "
                f"data.dataset=NAME (bundled: {', '.join(BUNDLED)}), not "
                + ("both" if path is not None else "neither")
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
        self._table: SeriesTable | None = None

    # -- the table, read once ----------------------------------------------------------------------
    @property
    def table(self) -> SeriesTable:
        """Every column the run uses, in the data's units, gaps handled as ``data.missing`` says."""
        if self._table is None:
            if self.path is not None:
                frame, source = read_frame(self.path), f"data.path={self.path!r}"
            else:
                frame, source = bundled_frame(str(self.dataset)), f"data.dataset={self.dataset}"
            self._table, self.input_columns, self.target_columns = series_table(
                frame,
                source,
                columns=self.columns,
                target=self.target,
                time_column=self.time_column,
                missing=self.missing,
            )
            n_val = int(len(self._table.values) * self.val_fraction)
            self.n_train = len(self._table.values) - n_val
            if n_val < 2 or self.n_train < 2:
                raise ConfigError(
                    f"data.val_fraction={self.val_fraction} leaves {self.n_train} training and {n_val} "
                    f"held-out rows of {source}'s {len(self._table.values)}: each needs at least 2"
                )
            self.offset, self.scale = fit_scaling(
                self.model_values()[: self.n_train - self.shift], self.scale_kind
            )
        return self._table

    @property
    def forecasts_in_closed_loop(self) -> bool:
        """Whether the model's predictions can be fed back: every target is one of the inputs."""
        self.table  # noqa: B018 (reads the columns)
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
        values = self.table.values
        return np.diff(values, axis=0) if self.difference else values

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
        scale = torch.as_tensor(self.scale[which], dtype=values.dtype, device=values.device)
        offset = torch.as_tensor(self.offset[which], dtype=values.dtype, device=values.device)
        return values * scale + offset

    # -- what a dataset implements ---------------------------------------------------------------
    def load_splits(self) -> dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        scaled = torch.from_numpy((self.model_values() - self.offset) / self.scale).float()
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
            scale=tuple(float(s) for s in self.scale),
            offset=tuple(float(o) for o in self.offset),
            differenced=self.difference,
        )


def column_list(value: Sequence[str] | str | None) -> list[str] | None:
    """A column or a list of them, as a list (None stays None)."""
    return [value] if isinstance(value, str) else None if value is None else list(value)
