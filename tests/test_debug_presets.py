"""debug=fast|overfit|profile|anomaly (conf/debug/): each does what it promises, on every dataset and cell."""

import pytest

from seqexp.tasks.train import train
from tests.helpers import SMALL_CORPUS_TRAINING, grammar_corpus, hydra_job_config, read_events
from tests.spies import AnomalyRecorder

QUIET = ["trainer.enable_progress_bar=false", "model.hidden_size=16"]
CELLS = ["rnn", "lstm", "gru", "peephole-lstm"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(grammar_corpus(300), encoding="utf-8")
    return path


def data_overrides(data: str, corpus) -> list[str]:
    if data == "text":
        return [
            "data=text",
            f"data.path={corpus}",
            *SMALL_CORPUS_TRAINING,
            "seq_length=20",
            "data.batch_size=8",
            "data.test_fraction=0.1",
        ]
    return ["data.n_points=800", "seq_length=10"]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("data", ["sine", "text"])
def test_fast_runs_one_step_of_each_stage_and_keeps_nothing(tmp_path, corpus, data, cell):
    with hydra_job_config("train", ["debug=fast", f"model={cell}", *QUIET, *data_overrides(data, corpus)],
                          tmp_path / "run") as cfg:  # fmt: skip
        objective = train(cfg)
    assert objective < 100  # a finite validation loss
    kept = [p.name for p in (tmp_path / "run").rglob("*") if p.suffix == ".ckpt" or "tfevents" in p.name]
    assert kept == []


@pytest.mark.parametrize(("data", "cell", "low"), [("sine", "rnn", 1e-3), ("text", "gru", 0.3)])
def test_overfit_drives_the_training_loss_near_zero(tmp_path, corpus, data, cell, low):
    overrides = ["debug=overfit", f"model={cell}", *QUIET, *data_overrides(data, corpus)]
    if data == "text":
        overrides += ["model.hidden_size=64", "optim.lr=0.01"]
    with hydra_job_config("train", overrides, tmp_path / "run") as cfg:
        train(cfg)
    losses = [event.value for event in read_events(tmp_path / "run").Scalars("train/loss")]
    assert losses[-1] < low < losses[0], (losses[0], losses[-1])


def test_profile_writes_its_report_into_the_run_folder(tmp_path):
    with hydra_job_config("train", ["debug=profile", *QUIET, "data.n_points=800", "seq_length=10"],
                          tmp_path / "run") as cfg:  # fmt: skip
        train(cfg)
    report = (tmp_path / "run" / "fit-profile.txt").read_text()
    assert "run_training_batch" in report and "Mean duration" in report


@pytest.mark.parametrize("data", ["sine", "text"])
def test_anomaly_turns_on_autograd_anomaly_detection(tmp_path, corpus, data):
    AnomalyRecorder.seen = []
    overrides = ["debug=anomaly", *QUIET, *data_overrides(data, corpus), "trainer.max_steps=3",
                 "+callbacks.spy._target_=tests.spies.AnomalyRecorder"]  # fmt: skip
    with hydra_job_config("train", overrides, tmp_path / "run") as cfg:
        train(cfg)
    assert AnomalyRecorder.seen == [True, True, True]
