"""Issue 23: every logger gets what a run shows, read back with that logger's own client; a resumed run
continues the same tracker run without duplicated points; the report needs no particular logger."""

import csv
import html
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from seqexp.errors import ConfigError
from seqexp.tasks.train import build
from seqexp.trackers.files import MetricsFile
from seqexp.trackers.metrics_csv import read_rows
from tests import helpers
from tests.helpers import SMALL_CORPUS_TRAINING, compose_train, grammar_corpus, read_events, report
from tests.tracker_readers import wandb_config_and_summary, wandb_history, wandb_runs

TEXT_RUN = [
    "data=text",
    *SMALL_CORPUS_TRAINING,
    "data.batch_size=4",
    "seq_length=20",
    "model.hidden_size=16",
    "trainer.max_epochs=null",
    "trainer.max_steps=40",
    "trainer.val_check_interval=20",
    "trainer.check_val_every_n_epoch=null",
    "callbacks.text_sample.length=40",
    "callbacks.grad_flow.every=1",
]


def text_run(tmp_path: Path, *overrides: str) -> list[str]:
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        corpus.write_text(grammar_corpus(150))
    return [*TEXT_RUN, f"data.path={corpus}", f"paths.data_dir={tmp_path / 'data'}", *overrides]


def points(run_dir: Path, name: str) -> list[tuple[int, float]]:
    """``(step, value)`` of ``name`` in the run's metrics.csv, in the order they were written."""
    return [
        (step, value) for step, row_name, value, _ in read_rows(run_dir / "metrics.csv") if row_name == name
    ]


# -- metrics.csv: what every run writes, whatever its loggers ---------------------------------------------


def test_the_metrics_file_keeps_what_was_logged_drops_a_row_cut_short_and_restarts_at_a_step(tmp_path):
    files = MetricsFile(str(tmp_path))
    files.log_metrics({"train/loss": 2.5, "val/loss": 3.0}, step=4)
    files.log_metrics({"train/loss": 1.25}, step=9)
    with (tmp_path / "metrics.csv").open() as file:
        header, *rows = list(csv.reader(file))
    assert header == ["step", "name", "value", "time"]
    assert [(int(s), n, float(v)) for s, n, v, _ in rows] == [
        (4, "train/loss", 2.5), (4, "val/loss", 3.0), (9, "train/loss", 1.25)
    ]  # fmt: skip
    assert files.last_steps() == {"train/loss": 9, "val/loss": 4}

    with (tmp_path / "metrics.csv").open("a") as file:
        file.write("12,train/loss,0.7")  # a kill in the middle of a row: no line end
    assert points(tmp_path, "train/loss") == [(4, 2.5), (9, 1.25)]

    assert files.continue_at(9, files.last_steps())  # a resume from the checkpoint at step 9
    files.log_metrics({"train/loss": 1.0}, step=9)
    assert points(tmp_path, "train/loss") == [(4, 2.5), (9, 1.0)]
    assert files.continue_at(None, {}) and read_rows(tmp_path / "metrics.csv") == []
    assert not MetricsFile(str(tmp_path / "new")).continue_at(None, {})


def test_runs_starting_together_share_one_mlflow_experiment(tmp_path):
    from mlflow import MlflowClient

    from seqexp.trackers.mlflow import shared_experiment

    client = MlflowClient(f"file:{tmp_path / 'mlruns'}")
    first = shared_experiment(client, "seqexp")
    # A run that looked before the other created it: it finds none, and its create is refused.
    look, looked = client.get_experiment_by_name, []

    def too_early_the_first_time(name):
        looked.append(name)
        return None if len(looked) == 1 else look(name)

    client.get_experiment_by_name = too_early_the_first_time
    assert shared_experiment(client, "seqexp") == first
    assert len(looked) == 2  # it looked again after its create was refused
    assert [e.name for e in client.search_experiments()].count("seqexp") == 1


def test_a_logger_whose_package_is_missing_is_refused_naming_the_extra(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "wandb" else find_spec(name)
    )
    cfg = compose_train(["logger=wandb", "data.n_points=400"], tmp_path)
    with pytest.raises(
        ConfigError, match=r"logger=wandb needs the wandb package.*pip install -e '\.\[wandb\]'"
    ):
        build(cfg)


@pytest.mark.slow
def test_the_report_of_a_csv_only_sweep_equals_the_one_read_from_tensorboard_events(
    tmp_path, run_script, tiny_sine, capsys
):
    sweep = tmp_path / "sweep"
    # With a Lightning logger of the user's own besides, which takes no figures.
    own = [
        "+logger.own._target_=pytorch_lightning.loggers.CSVLogger",
        "+logger.own.save_dir=${paths.output_dir}",
    ]
    args = ["-m", "model=rnn,gru", "logger=[tensorboard,csv]", *own, f"hydra.sweep.dir={sweep}", *tiny_sine]
    result = run_script("train.py", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    said = "logger CSVLogger takes the scalars and hyperparameters only: the figures and text samples"
    assert (result.stdout + result.stderr).count(said) == 2, result.stdout[-3000:]  # once per job
    for job in sweep.glob("*/status.json"):
        with next(job.parent.glob("lightning_logs/version_0/metrics.csv")).open() as file:
            own_rows = list(csv.DictReader(file))
        assert any(row["val/loss"] for row in own_rows) and any(row["hp/best_val_loss"] for row in own_rows)
        (job.parent / "lightning_logs").rename(tmp_path / f"own-{job.parent.name}")
    # The same sweep twice: logged with csv only, and with TensorBoard only (as runs from before metrics
    # files were, which the report reads from their events).
    shutil.copytree(sweep, tmp_path / "tensorboard")
    sweep.rename(tmp_path / "csv")
    leaderboards = {}
    for logger, other in (("csv", "tensorboard"), ("tensorboard", "metrics.csv")):
        jobs = sorted(path.parent for path in (tmp_path / logger).glob("*/status.json"))
        assert len(jobs) == 2
        for job in jobs:
            shutil.rmtree(job / other) if other == "tensorboard" else (job / other).unlink()
        code, _, errors = report(tmp_path / logger, capsys)
        assert code == 0, errors
        with (tmp_path / logger / "leaderboard.csv").open() as file:
            rows = list(csv.DictReader(file))
        leaderboards[logger] = rows
    # Each logger stamps a point with its own clock reading, microseconds apart.
    spans = {
        logger: [float(row.pop("wall time (s)")) for row in rows] for logger, rows in leaderboards.items()
    }
    assert spans["csv"] == pytest.approx(spans["tensorboard"], abs=0.05)
    assert leaderboards["csv"] == leaderboards["tensorboard"]
    assert len(leaderboards["csv"]) == 2 and all(row["best val/loss"] for row in leaderboards["csv"])


# -- every logger at once, read back with each one's own client, then resumed ------------------------------


@pytest.mark.slow
def test_every_logger_gets_the_scalars_figures_samples_and_hyperparameters_and_resume_keeps_its_run(
    tmp_path, run_script
):
    from mlflow import MlflowClient

    run_dir, tracking_uri = tmp_path / "run", f"file:{tmp_path / 'mlruns'}"
    loggers = ["logger=[tensorboard,csv,mlflow,wandb]", f"logger.mlflow.tracking_uri={tracking_uri}"]
    result = run_script("train.py", *text_run(tmp_path, *loggers, f"hydra.run.dir={run_dir}"))
    assert result.returncode == 0, result.stderr[-3000:]
    val_loss = points(run_dir, "val/loss")
    assert [step for step, _ in val_loss] == [19, 39]

    # TensorBoard, with its own reader: the same points, the figure and the sample.
    events = read_events(run_dir)
    assert [(e.step, pytest.approx(e.value)) for e in events.Scalars("val/loss")] == val_loss
    assert [image.step for image in events.Images("val/grad_flow")] == [19, 39]
    tb_sample = events.Tensors("val/sample/text_summary")[-1].tensor_proto.string_val[0].decode()

    # CSV: the files read back as written.
    figures = sorted((run_dir / "figures" / "val" / "grad_flow").glob("*.png"))
    assert [path.name for path in figures] == ["step-0000019.png", "step-0000039.png"]
    image = imread(figures[-1])
    assert image.shape[:2] == (
        events.Images("val/grad_flow")[-1].height,
        events.Images("val/grad_flow")[-1].width,
    )
    sample = (run_dir / "samples" / "val" / "sample" / "step-0000039.txt").read_text()
    assert len(sample) > 40 and tb_sample == "\n".join(f"    {line}" for line in sample.split("\n"))
    hparams = (run_dir / "hparams.yaml").read_text()
    assert (
        "model.hidden_size: 16" in hparams and f"hp/best_val_loss: {min(v for _, v in val_loss)!r}" in hparams
    )

    # MLflow, with MlflowClient.
    run_id = json.loads((run_dir / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    assert run.data.params["model.hidden_size"] == "16" and run.info.status == "FINISHED"
    history = [(m.step, m.value) for m in client.get_metric_history(run_id, "val/loss")]
    assert sorted(history) == [(step, pytest.approx(value)) for step, value in val_loss]
    assert [a.path for a in client.list_artifacts(run_id, "figures/val/grad_flow")] == [
        "figures/val/grad_flow/step-0000019.png", "figures/val/grad_flow/step-0000039.png"
    ]  # fmt: skip
    assert (
        client.download_artifacts(run_id, "samples/val/sample/step-0000039.txt", str(tmp_path))
        and (tmp_path / "samples" / "val" / "sample" / "step-0000039.txt").read_text() == sample
    )

    # W&B, from its offline run file.
    wandb_id = json.loads((run_dir / "trackers.json").read_text())["wandb"]
    (wandb_run,) = wandb_runs(run_dir)
    assert wandb_run.name.endswith(wandb_id)
    rows = wandb_history(run_dir)
    logged = [(row["trainer/global_step"], row["val/loss"]) for row in rows if "val/loss" in row]
    assert logged == [(step, pytest.approx(value)) for step, value in val_loss]
    figures = [row for row in rows if "val/grad_flow" in row]
    assert [(row["trainer/global_step"], row["val/grad_flow"]["_type"]) for row in figures] == [
        (19, "image-file"), (39, "image-file")
    ]  # fmt: skip
    assert imread(wandb_run / "files" / figures[-1]["val/grad_flow"]["path"]).shape[:2] == image.shape[:2]
    page = [row["val/sample"] for row in rows if "val/sample" in row][-1]
    assert html.escape(sample) in (wandb_run / "files" / page["path"]).read_text()
    config, summary = wandb_config_and_summary(run_dir)
    assert config["model.hidden_size"] == 16 and summary["hp/best_val_loss"] == pytest.approx(
        min(v for _, v in val_loss)
    )

    # Resumed for 20 more steps: the same tracker runs, every step once.
    more = run_script("train.py", f"resume={run_dir}", "trainer.max_steps=60")
    assert more.returncode == 0, more.stderr[-3000:]
    assert json.loads((run_dir / "trackers.json").read_text()) == {"mlflow": run_id, "wandb": wandb_id}
    val_loss = points(run_dir, "val/loss")
    assert [step for step, _ in val_loss] == [19, 39, 59]
    train_steps = [step for step, _ in points(run_dir, "train/loss")]
    assert train_steps == sorted(set(train_steps))
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "val/loss"))
    assert history == [(step, pytest.approx(value)) for step, value in val_loss]
    mlflow_train = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert sorted(mlflow_train) == train_steps
    rows = wandb_history(run_dir)
    # One offline run per process, both of the same W&B run.
    assert [run.name.endswith(wandb_id) for run in wandb_runs(run_dir)] == [True, True]
    wandb_train = [row["trainer/global_step"] for row in rows if "train/loss" in row]
    assert wandb_train == train_steps
    events = read_events(run_dir)
    assert [e.step for e in events.Scalars("val/loss")] == [19, 39, 59]


# -- a real MLflow server --------------------------------------------------------------------------------


@pytest.fixture
def mlflow_server(tmp_path) -> Iterator[str]:
    with helpers.mlflow_server(tmp_path, helpers.free_port()) as url:
        yield url


@pytest.mark.slow
def test_a_run_logs_to_a_real_mlflow_server_and_its_resume_continues_the_same_run(
    tmp_path, run_script, mlflow_server
):
    from mlflow import MlflowClient

    run_dir = tmp_path / "run"
    overrides = ["logger=mlflow", f"logger.mlflow.tracking_uri={mlflow_server}", f"hydra.run.dir={run_dir}"]
    result = run_script("train.py", *text_run(tmp_path, *overrides, "trainer.max_steps=20"))
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = run_script("train.py", f"resume={run_dir}", "trainer.max_steps=40")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    client = MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("seqexp").experiment_id])
    assert run.info.run_id == json.loads((run_dir / "trackers.json").read_text())["mlflow"]
    assert run.info.status == "FINISHED" and run.data.params["seq_length"] == "20"
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val/loss"))
    assert history == [(step, pytest.approx(value)) for step, value in points(run_dir, "val/loss")]
    assert [step for step, _ in history] == [19, 39]
    train = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert sorted(train) == sorted(set(train)) == [step for step, _ in points(run_dir, "train/loss")]
    figures = [a.path for a in client.list_artifacts(run.info.run_id, "figures/val/grad_flow")]
    assert figures == ["figures/val/grad_flow/step-0000019.png", "figures/val/grad_flow/step-0000039.png"]
    (tmp_path / "download").mkdir()
    local = client.download_artifacts(run.info.run_id, figures[-1], str(tmp_path / "download"))
    assert np.asarray(imread(local)).ndim == 3
    shutil.rmtree(tmp_path / "download")
