"""Your own series (issue 21): tables read as float series, scaled on the training rows only, scored in the
data's units against the classical baselines, forecast past their end, and refused in one line."""

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from seqexp.forecasting.scoring import seasonal_naive_scale
from seqexp.tasks.forecast import forecast
from seqexp.tasks.train import train
from tests.helpers import (
    assert_one_line,
    assert_user_error,
    compose_train,
    hydra_job_config,
    read_events,
    report,
)

ROWS = 600
HORIZON = 10


def weekly_table(rows: int = ROWS, shift: float = 0.0, factor: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """A date column, two numeric columns (a seasonal one with gaps, and a trend) and a text column."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    level = np.sin(2 * np.pi * t / 26) + 0.01 * t + 0.05 * rng.standard_normal(rows)
    other = np.cos(2 * np.pi * t / 26) + 0.05 * rng.standard_normal(rows)
    return pd.DataFrame(
        {
            "week": pd.date_range("2001-01-07", periods=rows, freq="W-SUN").strftime("%Y-%m-%d"),
            "level": shift + factor * level,
            "other": shift + factor * other,
            "site": ["north" if i % 2 else "south" for i in t],
        }
    )


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def series_module(path: Path, *overrides: str):
    cfg = compose_train(["data=series", f"data.path={path}", *overrides], path.parent / "composed")
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    return datamodule


def test_a_csv_becomes_its_numeric_columns_with_the_gaps_filled_and_the_dates_parsed(tmp_path, caplog):
    frame = weekly_table(rows=60)
    frame.loc[[3, 4, 10], "level"] = np.nan
    frame.loc[[0], "other"] = np.nan
    expected = frame[["level", "other"]].to_numpy().copy()
    # Linear between the neighbours; a gap at the start takes the first value there is.
    expected[3, 0] = expected[2, 0] + (expected[5, 0] - expected[2, 0]) / 3
    expected[4, 0] = expected[2, 0] + 2 * (expected[5, 0] - expected[2, 0]) / 3
    expected[10, 0] = (expected[9, 0] + expected[11, 0]) / 2
    expected[0, 1] = expected[1, 1]
    datamodule = series_module(write_csv(frame, tmp_path / "weekly.csv"), "data.time_column=week")

    table = datamodule.table
    assert table.names == ("level", "other")  # the date and the text column are not inputs
    np.testing.assert_allclose(table.values, expected, rtol=0, atol=1e-12)
    assert "4 missing values" in caplog.text and "level: 3, other: 1" in caplog.text
    assert table.times[0] == np.datetime64("2001-01-07") and table.times[-1] == np.datetime64("2002-02-24")
    assert datamodule.spec.input_size == datamodule.spec.output_size == 2
    assert len(datamodule.splits["val"]) == 6 and len(datamodule.splits["train"]) == 54


def test_dropped_gaps_and_irregular_dates_are_reported_in_one_line_each(tmp_path, caplog):
    frame = weekly_table(rows=80)
    frame.loc[[5, 6], "level"] = np.nan
    datamodule = series_module(
        write_csv(frame, tmp_path / "t.csv"), "data.time_column=week", "data.missing=drop"
    )
    assert len(datamodule.table.values) == 78 and not np.isnan(datamodule.table.values).any()
    assert "data.missing=drop: 2 of 80 rows" in caplog.text
    # Dropping rows 5 and 6 leaves one step of three weeks among 7-day ones.
    assert "1 of 77 steps differ from the usual 7 days" in caplog.text
    assert datamodule.table.times[5] - datamodule.table.times[4] == np.timedelta64(21, "D")


def test_parquet_npy_and_npz_files_give_the_same_series_as_the_csv(tmp_path):
    frame = weekly_table(rows=80)
    numbers = frame[["level", "other"]]
    expected = numbers.to_numpy()
    csv_values = series_module(write_csv(frame, tmp_path / "t.csv"), "data.time_column=week").table.values
    np.testing.assert_allclose(
        csv_values, expected, rtol=1e-12
    )  # pandas' fast float parser is not round-trip exact
    frame.to_parquet(tmp_path / "t.parquet")
    np.save(tmp_path / "t.npy", numbers.to_numpy())
    np.savez(tmp_path / "t.npz", level=numbers["level"].to_numpy(), other=numbers["other"].to_numpy())
    parquet = series_module(tmp_path / "t.parquet", "data.time_column=week").table
    assert parquet.names == ("level", "other") and np.array_equal(parquet.values, expected)
    assert parquet.times[-1] == np.datetime64(frame["week"].iloc[-1])
    npy = series_module(tmp_path / "t.npy").table  # columns named by their index
    assert npy.names == ("0", "1") and np.array_equal(npy.values, expected) and npy.times is None
    npz = series_module(tmp_path / "t.npz").table
    assert npz.names == ("level", "other") and np.array_equal(npz.values, expected)


def test_the_scaling_is_fitted_on_the_training_rows_only(tmp_path):
    frame = weekly_table()
    changed = frame.copy()
    changed.loc[changed.index[-50:], "level"] += 100.0  # the held-out rows only (the last 10 %: 60)
    for kind in ("standard", "minmax"):
        first = series_module(write_csv(frame, tmp_path / "a.csv"), f"data.scale={kind}")
        second = series_module(write_csv(changed, tmp_path / "b.csv"), f"data.scale={kind}")
        assert first.spec.offset == second.spec.offset and first.spec.scale == second.spec.scale, kind
        assert torch.equal(first.splits["train"], second.splits["train"])
        assert not torch.equal(first.splits["val"], second.splits["val"])
        train = first.splits["train"].double()
        if kind == "standard":
            assert train.mean(0).abs().max() < 1e-6 and (train.std(0, unbiased=False) - 1).abs().max() < 1e-5
        else:
            assert train.min(0).values.abs().max() < 1e-6 and (train.max(0).values - 1).abs().max() < 1e-6


RUN = [
    "data=series",
    "data.time_column=week",
    f"data.horizon={HORIZON}",
    "data.stride=5",
    "data.season=26",
    "data.baselines=[naive,seasonal_naive,seasonal_naive_drift]",
    "data.batch_size=2",
    "seq_length=26",
    "model=gru",
    "model.hidden_size=16",
    "trainer.max_epochs=4",
    "trainer.enable_progress_bar=false",
    "callbacks.grad_flow=null",
]
SHIFT, FACTOR = 300.0, 7.5


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two runs in one folder: the series, and the series shifted and scaled by known constants."""
    root = tmp_path_factory.mktemp("series_runs")
    for name, shift, factor in (("plain", 0.0, 1.0), ("moved", SHIFT, FACTOR)):
        path = write_csv(weekly_table(shift=shift, factor=factor), root / f"{name}.csv")
        overrides = [*RUN, f"data.path={path}", f"paths.data_dir={root / 'data'}"]
        run = root / "runs" / name
        with hydra_job_config("train", overrides, run) as cfg:
            # What Hydra saves before a real run starts: the report and forecast.py read it.
            (run / ".hydra").mkdir(parents=True)
            OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
            OmegaConf.save([f"data.path={path.name}"], run / ".hydra" / "overrides.yaml")
            train(cfg)
    return root


def metrics(run: Path) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    with (run / "metrics.csv").open(newline="") as file:
        for row in csv.DictReader(file):
            values.setdefault(row["name"], []).append(float(row["value"]))
    return values


def test_every_metric_is_in_the_data_units_and_a_moved_series_scores_in_proportion(runs):
    plain, moved = metrics(runs / "runs" / "plain"), metrics(runs / "runs" / "moved")
    # Standard scaling makes the two series one and the same to the model: the same training, so the
    # loss (on the model's scale) and MASE (unitless) agree, and each error in units grows with the factor.
    assert moved["val/loss"] == pytest.approx(plain["val/loss"], rel=1e-4)
    assert moved["val/mase"] == pytest.approx(plain["val/mase"], rel=1e-4)
    assert moved["val/mae"] == pytest.approx([FACTOR * v for v in plain["val/mae"]], rel=1e-4)
    assert moved["val/forecast_mae"] == pytest.approx(
        [FACTOR * v for v in plain["val/forecast_mae"]], rel=1e-4
    )
    assert moved["val/mse"] == pytest.approx([FACTOR**2 * v for v in plain["val/mse"]], rel=1e-4)
    assert len(plain["val/mase"]) == 4  # every validation is scored


def test_the_baselines_are_scored_on_the_runs_origins_and_ranked_beside_the_runs(runs, capsys):
    record = json.loads((runs / "runs" / "plain" / "baselines.json").read_text())
    # By hand: the naive forecast from each origin is the last value before it, for all 10 steps.
    frame = weekly_table()
    values = frame[["level", "other"]].to_numpy()
    n_train = ROWS - ROWS // 10
    origins = list(range(n_train, ROWS - HORIZON + 1, 5))
    errors = [np.abs(values[o : o + HORIZON] - values[o - 1]).mean(axis=0) for o in origins]
    mae = np.mean(errors, axis=0)
    scale = np.abs(values[26:n_train] - values[: n_train - 26]).mean(axis=0)
    assert record["origins"] == len(origins) == 11
    assert record["scores"]["naive"]["mae"] == pytest.approx(mae.mean(), rel=1e-9)
    assert record["scores"]["naive"]["mase"] == pytest.approx((mae / scale).mean(), rel=1e-9)
    np.testing.assert_allclose(seasonal_naive_scale(values[:n_train], 26), scale, rtol=1e-12)

    status, output, _ = report(runs / "runs", capsys)
    assert status == 0, output
    with (runs / "runs" / "leaderboard.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    mase = [float(row["best val/mase"]) for row in rows]
    assert mase == sorted(mase)  # ranked by MASE, baselines and runs alike
    # Each series' baselines are rows of their own, named with the series and the origins they scored.
    baselines = {row["run"]: row for row in rows if row["status"] == "baseline"}
    assert {row["run"] for row in rows} - set(baselines) == {"plain", "moved"}
    assert len(baselines) == 6
    (naive,) = [row for name, row in baselines.items() if name.startswith("naive ") and "plain.csv" in name]
    assert naive["run"].endswith("11 origins x 10 steps)")
    assert float(naive["best val/mase"]) == pytest.approx(record["scores"]["naive"]["mase"])


def test_the_forecast_figure_and_the_one_step_fit_are_in_tensorboard(runs):
    images = read_events(runs / "runs" / "plain").Tags()["images"]
    assert "val/forecast" in images and "val/sine_fit" in images


def test_forecast_py_continues_the_dates_in_the_data_units(runs, tmp_path):
    run = runs / "runs" / "moved"
    out = tmp_path / "forecast.csv"
    with hydra_job_config("forecast", [f"ckpt={run}", "horizon=5", f"out={out}"], tmp_path) as cfg:
        forecast(cfg)
    written = pd.read_csv(out)
    assert list(written.columns) == ["week", "level", "other"]
    # The five Sundays after the series' last.
    last = pd.Timestamp(weekly_table()["week"].iloc[-1])
    assert last.day_name() == "Sunday"
    assert list(written["week"]) == [str((last + pd.Timedelta(weeks=k)).date()) for k in range(1, 6)]
    # The first step, computed here without the task: the best model over the whole scaled series.
    # A run folder stands for its best checkpoint: the model with the best val/loss.
    (best,) = (run / "checkpoints").glob("best-step*.ckpt")
    checkpoint = torch.load(best, weights_only=True)
    from seqexp.checkpoints import model_from_checkpoint

    model, spec = model_from_checkpoint(checkpoint)
    values = weekly_table(shift=SHIFT, factor=FACTOR)[["level", "other"]].to_numpy()
    scaled = (values - np.array(spec.offset)) / np.array(spec.scale)
    with torch.no_grad():
        output, _ = model.eval()(torch.tensor(scaled, dtype=torch.float32).unsqueeze(0))
    first = output[0, -1].double().numpy() * np.array(spec.scale) + np.array(spec.offset)
    np.testing.assert_allclose(written.iloc[0][["level", "other"]].to_numpy(float), first, rtol=1e-5)
    assert np.abs(written[["level", "other"]].to_numpy() - values[-1]).max() < 10 * FACTOR  # the data's units


def bad_csv(tmp_path: Path, kind: str) -> tuple[Path, list[str]]:
    path = tmp_path / "bad.csv"
    frame = weekly_table(rows=200)
    overrides: list[str] = []
    if kind == "empty":
        path.write_text("")
    elif kind == "unreadable":
        path = tmp_path / "bad.parquet"
        path.write_bytes(b"PAR1 this is not a parquet file")
    elif kind == "all missing":
        frame["level"] = np.nan
        write_csv(frame, path)
    elif kind == "too short":
        write_csv(frame.head(30), path)
        overrides = ["data.batch_size=4"]
    elif kind == "gap refused":
        frame.loc[7, "other"] = np.nan
        write_csv(frame, path)
        overrides = ["data.missing=error"]
    else:
        write_csv(frame, path)
        overrides = {"no column": ["data.columns=[level,height]"], "text column": ["data.target=site"]}[kind]
    return path, overrides


@pytest.mark.parametrize(
    "kind, fragments",
    [
        ("no column", ["data.columns", "'height'", "bad.csv", "level, other"]),
        ("text column", ["data.target", "'site'", "bad.csv", "not numeric", "'south' in row 1"]),
        ("empty", ["bad.csv", "is empty"]),
        ("unreadable", ["bad.parquet", "unreadable as parquet"]),
        ("all missing", ["column 'level'", "bad.csv", "no values"]),
        ("too short", ["split of data.path=", "bad.csv", "too short"]),
        ("gap refused", ["data.missing=error", "'other'", "row 8", "interpolate"]),
    ],
)
def test_bad_series_input_is_one_line_naming_the_file_and_the_column(tmp_path, kind, fragments):
    path, overrides = bad_csv(tmp_path, kind)
    run = ["data=series", f"data.path={path}", "trainer.max_steps=1", *overrides]
    with hydra_job_config("train", run, tmp_path / "run") as cfg, pytest.raises(Exception) as error:
        train(cfg)
    assert_one_line(error.value, *fragments)


def test_co2_is_read_offline_with_its_gaps_filled_and_weekly_dates(tmp_path, caplog):
    cfg = compose_train(["data=co2"], tmp_path)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    table = datamodule.table
    assert table.values.shape == (2284, 1) and not np.isnan(table.values).any()
    assert "59 missing values" in caplog.text
    assert set(np.diff(table.times).astype("timedelta64[D]").astype(int)) == {7}
    assert datamodule.n_train == 2056 and datamodule.origins() == list(range(2056, 2232 + 1, 13))


@pytest.mark.slow  # two runs, one of them two gloo processes
def test_a_csv_series_on_two_ddp_ranks_trains_like_one_process_with_twice_the_batch(tmp_path, run_script):
    """Two input columns and one of them the target: pairs of (inputs, next target) under DDP."""
    path = write_csv(weekly_table(rows=800), tmp_path / "weekly.csv")
    common = [
        "data=series", f"data.path={path}", "data.target=other", "data.horizon=8",
        "data.baselines=[naive]", "model=lstm", "model.hidden_size=8", "model.dropout=0", "seq_length=10",
        "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
        f"paths.data_dir={tmp_path / 'data'}", "+callbacks.spy._target_=tests.spies.PairRecorder",
    ]  # fmt: skip
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    result = run_script(
        "train.py", *common, "data.batch_size=4", f"+callbacks.spy.out_dir={single}/batches",
        f"hydra.run.dir={single}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_script(
        "train.py", *common, "trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=2",
        f"+callbacks.spy.out_dir={ddp}/batches", f"hydra.run.dir={ddp}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    single_metrics, ddp_metrics = metrics(single), metrics(ddp)
    assert len(single_metrics["train/loss"]) == len(ddp_metrics["train/loss"]) > 20
    assert ddp_metrics["train/loss"] == pytest.approx(single_metrics["train/loss"], abs=1e-5)
    for name in ("val/loss", "val/mae", "val/forecast_mae", "val/mase"):
        assert ddp_metrics[name] == pytest.approx(single_metrics[name], rel=1e-5), name
    # Rank r read rows [2r, 2r + 2) of the single process's four, inputs and their next targets alike.
    ranks = [torch.load(ddp / "batches" / f"rank{r}.pt") for r in (0, 1)]
    batches = torch.load(single / "batches" / "rank0.pt")
    assert len(batches) == len(ranks[0]) == len(ranks[1]) > 20
    for k, (x, y) in enumerate(batches):
        assert torch.equal(x, torch.cat([ranks[0][k][0], ranks[1][k][0]]))
        assert torch.equal(y, torch.cat([ranks[0][k][1], ranks[1][k][1]]))
        assert x.shape[-1] == 2 and y.shape[-1] == 1
        assert torch.equal(y[:, :-1, 0], x[:, 1:, 1])  # the target is the next row's "other"


def test_a_series_without_a_file_or_a_dataset_is_one_line_naming_both(tmp_path, run_script):
    """The script itself: exit status 2, one error line, no traceback."""
    result = run_script("train.py", "data=series", f"hydra.run.dir={tmp_path / 'run'}")
    assert_user_error(
        result, "data.path=FILE", "data.dataset=NAME", "co2, sunspots, macrodata", "neither is set"
    )
