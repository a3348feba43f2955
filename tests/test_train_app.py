"""The training app end to end, through Hydra, as a user runs it."""

import math
from pathlib import Path

import pytest
import torch
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.helpers import read_events


def test_default_sine_run_logs_scalars_figures_hparams_and_checkpoints(run_dir: Path, run_script, tiny_sine):
    result = run_script("train.py", *tiny_sine, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]

    assert (run_dir / ".hydra" / "config.yaml").is_file()
    events = read_events(run_dir)
    tags = events.Tags()
    for tag in ("train/loss", "val/loss", "val/mse", "train/grad_norm", "lr-Adam", "hp/best_val_loss"):
        assert tag in tags["scalars"], tag
    assert "val/forecast" in tags["images"] and "val/grad_flow" in tags["images"]
    # At the first validation, every 5th (callbacks.sine_fit.every) and for the final model: the first of
    # the two validations here, and the end of training; real PNGs.
    figures = events.Images("val/forecast")
    assert [f.step for f in figures] == [e.step for e in events.Scalars("val/forecast_mse")]
    assert len(figures) == 2 and all(f.encoded_image_string.startswith(b"\x89PNG") for f in figures)
    # The final model: Lightning logs val/loss at the step before global_step.
    assert figures[-1].step == events.Scalars("val/loss")[-1].step + 1
    val_losses = [e.value for e in events.Scalars("val/loss")]
    assert len(val_losses) == 2 and all(math.isfinite(v) for v in val_losses)
    assert [e.value for e in events.Scalars("val/mse")] == val_losses
    assert events.Scalars("hp/best_val_loss")[0].value == pytest.approx(min(val_losses), rel=1e-6)

    # The HPARAMS tab: the run's knobs with the final metrics.
    hparams = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"])
    knobs = session.session_start_info.hparams
    assert knobs["model.hidden_size"].number_value == 8 and knobs["model.cell"].string_value == "torch.nn.RNN"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/experiment"])
    metric_tags = {m.name.tag for m in experiment.experiment.metric_infos}
    assert {"hp/best_val_loss", "hp/final_val_loss"} <= metric_tags

    checkpoints = run_dir / "checkpoints"
    best = [p for p in checkpoints.glob("best-*.ckpt")]
    assert (checkpoints / "last.ckpt").is_file() and len(best) == 1
    # Plain containers only: the checkpoint loads with weights_only=True.
    checkpoint = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["model"]["hidden_size"] == 8


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_each_cell_trains_through_the_app(run_dir: Path, cell: str, run_script, tiny_sine):
    result = run_script("train.py", *tiny_sine, f"model={cell}", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    hparams = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams["model"]["cell"] == f"torch.nn.{cell.upper()}"
    val_mse = [e.value for e in read_events(run_dir).Scalars("val/mse")]
    assert len(val_mse) == 2 and val_mse[1] < val_mse[0], val_mse  # it learns


def test_multirun_puts_each_job_in_its_own_folder_with_events(tmp_path: Path, run_script, tiny_sine):
    sweep = tmp_path / "sweep"
    result = run_script("train.py", "-m", "model=rnn,gru", *tiny_sine, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in jobs] == ["0_model=rnn", "1_model=gru"]  # the overrides that differ
    cells = []
    for job in jobs:
        assert "val/loss" in read_events(job).Tags()["scalars"]
        cells.append((job / ".hydra" / "overrides.yaml").read_text())
    assert "model=rnn" in cells[0] and "model=gru" in cells[1]


@pytest.mark.slow
def test_sine_seed_preset_fits_the_curve_as_well_as_the_notes(run_dir: Path, run_script):
    result = run_script(
        "train.py", "experiment=sine_seed", "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = read_events(run_dir)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 75  # 75 optimizer steps, as in the notes
    val_mse = events.Scalars("val/mse")[-1].value
    # The notes' notebook ends near 4e-4 (training MSE after 75 steps); allow a little noise.
    assert val_mse < 5e-4, val_mse


@pytest.mark.parametrize(
    ("overrides", "clip_val", "algorithm"),
    [([], 5.0, "norm"), (["clip=1", "clip_algorithm=value"], 1.0, "value"), (["clip=null"], None, "norm")],
)
def test_clip_reaches_the_trainers_gradient_clipping(overrides, clip_val, algorithm):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from tests.helpers import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "trainer.default_root_dir=."])
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert trainer.gradient_clip_val == clip_val
    assert trainer.gradient_clip_algorithm == algorithm
