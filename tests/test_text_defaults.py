"""A character corpus sets how it trains (conf/_text_training.yaml, issue 26): every cell gets the same
size, and presets and the command line still win over it."""

import pytest
from omegaconf import OmegaConf

from seqexp.errors import ConfigError
from seqexp.tasks.train import build
from tests.helpers import compose_train, grammar_corpus

SIZE_KEYS = ("hidden_size", "num_layers", "encoder", "dropout")


def training(overrides: list[str], tmp_path) -> dict[str, object]:
    cfg = compose_train(overrides, tmp_path, return_hydra_config=True)
    return {
        **{f"model.{key}": cfg.model[key] for key in SIZE_KEYS},
        "seq_length": cfg.seq_length,
        "data.batch_size": cfg.data.batch_size,
        "optim.lr": cfg.optim.lr,
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
        "data.batch_size": None,  # 64 rows where the splits fill them: test_a_short_corpus_halves_its_rows
        "optim.lr": 0.0045,
        "scheduler": "none",
        "trainer.max_time": "00:00:10:00",
    }


def test_the_command_line_and_presets_win_over_the_corpus_and_the_sine_keeps_its_size(tmp_path):
    typed = ["model.hidden_size=64", "scheduler=warmup_cosine", "optim.lr=0.009", "trainer.max_time=null"]
    mine = training(["model=lstm", "data=shakespeare", *typed], tmp_path)
    chosen = (mine["model.hidden_size"], mine["scheduler"], mine["optim.lr"], mine["trainer.max_time"])
    assert chosen == (64, "warmup_cosine", 0.009, None)
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
        "optim.lr": 0.01,
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


def test_eval_keeps_the_runs_own_window_on_another_corpus():
    """eval.py composes the data group too, but not the training recipe: its seq_length stays the run's
    (null: taken from the checkpoint)."""
    from hydra import compose, initialize_config_dir

    from tests.helpers import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["ckpt=x", "data=text", "data.path=y"])
    assert cfg.seq_length is None and "model" not in cfg and "trainer" not in cfg


def test_a_short_corpus_halves_its_rows_and_a_typed_batch_size_is_kept_or_refused(tmp_path, caplog):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(grammar_corpus(2_000)[:40_000])  # 4,000 validation characters: 26 rows of 151
    rows = {}
    for extra in ([], ["trainer=ddp_cpu", "trainer.devices=2"], ["seq_length=20"]):
        cfg = compose_train(["data=text", f"data.path={corpus}", *extra], tmp_path)
        datamodule, _, trainer = build(cfg)
        windows = len(datamodule._window_stream("val", trainer.world_size))
        rows[" ".join(extra)] = (datamodule.batch_size, windows)
    assert rows == {"": (16, 1), "trainer=ddp_cpu trainer.devices=2": (8, 1), "seq_length=20": (64, 3)}
    assert "data.batch_size: 16 rather than 64 rows per process" in caplog.text

    typed = compose_train(["data=text", f"data.path={corpus}", "data.batch_size=32"], tmp_path)
    with pytest.raises(ConfigError, match="batch_size=32"):
        build(typed)
