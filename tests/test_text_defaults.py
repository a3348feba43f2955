"""A character corpus sets how it trains (conf/_text_training.yaml, issue 26): every cell gets the same
size, and presets and the command line still win over it."""

import pytest
from omegaconf import OmegaConf

from tests.helpers import compose_train

SIZE_KEYS = ("hidden_size", "num_layers", "encoder", "dropout")


def training(overrides: list[str], tmp_path) -> dict[str, object]:
    cfg = compose_train(overrides, tmp_path, return_hydra_config=True)
    return {
        **{f"model.{key}": cfg.model[key] for key in SIZE_KEYS},
        "seq_length": cfg.seq_length,
        "data.batch_size": cfg.data.batch_size,
        "scheduler": cfg.hydra.runtime.choices.scheduler,
        "trainer.max_time": cfg.trainer.max_time,
    }


@pytest.mark.parametrize(
    "corpus", [["data=shakespeare"], ["data=tinyshakespeare"], ["data=text", "data.path=x"]]
)
def test_every_cell_gets_the_corpus_size(corpus, tmp_path):
    cells = ("rnn", "lstm", "gru", "peephole-lstm")
    chosen = [training([f"model={cell}", *corpus], tmp_path) for cell in cells]
    assert all(choice == chosen[0] for choice in chosen), chosen
    assert chosen[0] == {
        "model.hidden_size": 512,
        "model.num_layers": 1,
        "model.encoder": "embedding",
        "model.dropout": 0.1,
        "seq_length": 150,
        "data.batch_size": 64,
        "scheduler": "warmup_cosine",
        "trainer.max_time": "00:00:10:00",
    }


def test_the_command_line_and_presets_win_over_the_corpus_and_the_sine_keeps_its_size(tmp_path):
    typed = [
        "model=lstm",
        "data=shakespeare",
        "model.hidden_size=64",
        "scheduler=none",
        "trainer.max_time=null",
    ]
    mine = training(typed, tmp_path)
    assert (mine["model.hidden_size"], mine["scheduler"], mine["trainer.max_time"]) == (64, "none", None)
    assert mine["model.encoder"] == "embedding"  # what was not typed is still the corpus's

    quick = training(["experiment=shakespeare_quick"], tmp_path)
    assert (quick["model.hidden_size"], quick["model.num_layers"], quick["scheduler"]) == (128, 2, "none")
    assert quick["trainer.max_time"] is None  # its budget is 600 steps
    seed = compose_train(["experiment=charrnn_seed"], tmp_path)
    assert (seed.model.encoder, seed.trainer.max_time, seed.trainer.max_epochs) == ("onehot", None, 2)

    sine = training([], tmp_path)
    assert sine == {
        "model.hidden_size": 64,
        "model.num_layers": 1,
        "model.encoder": "onehot",
        "model.dropout": 0.0,
        "seq_length": 50,
        "data.batch_size": 4,
        "scheduler": "none",
        "trainer.max_time": None,
    }


@pytest.mark.slow
def test_a_real_cell_sweep_on_the_plays_gives_every_job_the_same_size(tmp_path, run_script):
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py", "-m", "model=rnn,lstm,gru", "data=shakespeare", "trainer.max_steps=1",
        "trainer.limit_val_batches=1", "callbacks.text_sample=null", "test_after_fit=false",
        "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    saved = [OmegaConf.load(job / ".hydra" / "config.yaml") for job in sorted(sweep.glob("*_model=*"))]
    assert [c.model.cell.rsplit(".", 1)[-1] for c in saved] == ["RNN", "LSTM", "GRU"]
    assert {tuple(c.model[key] for key in SIZE_KEYS) for c in saved} == {(512, 1, "embedding", 0.1)}
    # The advice line agrees with the size for the gated cells (the plain RNN of 512 has a third of the
    # GRU's parameters, and is still told it is small for 4.5 M characters).
    log = result.stdout + result.stderr
    assert log.count("the same order of magnitude, as the notes advise") == 2, log[-3000:]
