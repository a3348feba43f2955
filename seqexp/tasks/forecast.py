"""The forecast task (conf/forecast.yaml): a series model's forecast past the end of its series.

The state warms up on the whole series (every row, held-out ones too), then the model runs in closed loop
for ``horizon`` steps. The scaling is the checkpoint's (fitted on the run's training rows), so the CSV is
in the data's units; its first column continues the time column at the series' own frequency (or the row
numbers).
"""

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seqexp.app.devices import choose_device
from seqexp.checkpoints import model_from_checkpoint, read_checkpoint, require_finite_weights
from seqexp.data.files import write_atomically
from seqexp.errors import ConfigError
from seqexp.forecasting.model_forecasts import model_forecasts
from seqexp.run_layout import checkpoint_file
from seqexp.tasks.evaluate import data_config, run_config

if TYPE_CHECKING:
    import pandas as pd

    from seqexp.data.series import SeriesDataModule


def check_forecast_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first invalid value of a forecast configuration, before torch runs."""
    if OmegaConf.is_missing(cfg, "ckpt") or not cfg.ckpt:
        raise ConfigError("ckpt is missing: pass ckpt=PATH, a checkpoint or a run folder of a series run")
    horizon = cfg.horizon
    if horizon is not None and (not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1):
        raise ConfigError(f"horizon={horizon!r} is invalid: it must be an integer >= 1 (steps past the end)")
    if cfg.out:
        out = Path(str(cfg.out)).expanduser()
        if out.is_dir() or not out.resolve().parent.is_dir():
            raise ConfigError(f"out={cfg.out!r} must be a file in an existing folder, e.g. forecast.csv")


def forecast(cfg: DictConfig) -> "pd.DataFrame":
    """Forecast ``cfg.horizon`` steps past the end of the run's series; print or write them as CSV."""
    check_forecast_config(cfg)
    import pandas as pd

    device = choose_device(cfg.device)
    # A run's best model, not its last: a series model forecasts worse once it overfits the training rows.
    file = checkpoint_file(cfg.ckpt, best=True)
    model, spec = model_from_checkpoint(read_checkpoint(file, device=device), path=cfg.ckpt)
    require_finite_weights(model, path=cfg.ckpt)
    if not spec.columns:
        raise ConfigError(
            f"ckpt={cfg.ckpt!r} is not a model of a series read from a table: forecast.py forecasts runs of "
            "data=series, co2, sunspots or macrodata"
        )
    inputs, targets = list(spec.inputs), list(spec.targets)
    if sorted(targets) != sorted(inputs):
        raise ConfigError(
            f"ckpt={cfg.ckpt!r} reads columns it does not predict, whose future values are unknown: "
            "forecast.py forecasts models whose targets are their inputs (data.target: null)"
        )
    datamodule: SeriesDataModule = instantiate(data_config(cfg, run_config(file)))
    table = datamodule.table
    if table.names != spec.columns:
        raise ConfigError(
            f"ckpt={cfg.ckpt!r} was trained on the columns {list(spec.columns)}, but the data gives "
            f"{list(table.names)}: forecast from the run's own data"
        )
    horizon = datamodule.forecasting.horizon if cfg.horizon is None else int(cfg.horizon)
    end = len(table.values)
    values = model_forecasts(model, spec, table.values, [end], horizon)[0]
    frame = pd.DataFrame(values, columns=[table.names[column] for column in targets])
    frame.insert(0, table.time_column or "row", _times_after(table.times, end, horizon))
    text = frame.to_csv(index=False)
    if cfg.out:
        write_atomically(Path(str(cfg.out)).expanduser(), lambda stream: stream.write(text.encode()))
        last = end - 1 if table.times is None else pd.Timestamp(table.times[-1]).date()
        print(f"{horizon} steps after {frame.columns[0]} {last} written to {cfg.out}", file=sys.stderr)
    else:
        print(text, end="")
    return frame


def _times_after(times: np.ndarray | None, rows: int, horizon: int) -> "pd.Index | np.ndarray":
    """The ``horizon`` times after the last row: the series' own frequency where pandas can tell it,
    else its usual step (a log line says so); row numbers where it has no time column."""
    import pandas as pd

    if times is None:
        return np.arange(rows, rows + horizon)
    index = pd.DatetimeIndex(times)
    frequency = pd.infer_freq(index) if len(index) >= 3 else None
    if frequency is not None:
        return pd.date_range(index[-1], periods=horizon + 1, freq=frequency)[1:]
    step = pd.Timedelta(np.median(np.diff(times).astype("int64")), "ns")
    print(
        f"the time column has no regular frequency: the forecast steps by its usual step, {step}",
        file=sys.stderr,
    )
    return index[-1] + step * np.arange(1, horizon + 1)
