"""model=peephole-lstm through the real app: it trains on sine and on text, checkpoints and samples."""

from pathlib import Path

import pytest
import torch

from tests.helpers import SMALL_CORPUS_TRAINING, grammar_corpus, read_events, unigram_entropy_nats


@pytest.mark.parametrize("variant", ["diagonal", "full"])
def test_peephole_lstm_learns_the_sine(run_script, tiny_sine, tmp_path: Path, variant: str):
    run_dir = tmp_path / "run"
    overrides = [*tiny_sine, "model=peephole-lstm", f"model.peephole={variant}", "model.num_layers=1"]
    result = run_script("train.py", *overrides, "trainer.max_epochs=4", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    val_mse = [e.value for e in read_events(run_dir).Scalars("val/mse")]
    assert len(val_mse) == 4 and val_mse[-1] < 0.5 * val_mse[0], val_mse
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["model"]["peephole"] == variant
    assert "model.core.weight_peephole_l0" in checkpoint["state_dict"]


def test_peephole_char_model_trains_checkpoints_and_samples(run_script, tmp_path: Path):
    corpus = grammar_corpus(sentences=700)
    (tmp_path / "corpus.txt").write_text(corpus, encoding="utf-8")
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py", "data=text", f"data.path={tmp_path / 'corpus.txt'}", *SMALL_CORPUS_TRAINING,
        "data.batch_size=8", "seq_length=32",
        "model=peephole-lstm", "model.hidden_size=48", "model.num_layers=1", "optim.lr=0.01",
        "trainer.max_epochs=3", "trainer.enable_progress_bar=false", "callbacks.text_sample.prime=the",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    final_val = read_events(run_dir).Scalars("val/loss")[-1].value
    assert final_val < 0.5 * unigram_entropy_nats(corpus), final_val

    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    sample = run_script("sample.py", f"ckpt={checkpoint}", "prime=the", "length=200", "seed=3")
    assert sample.returncode == 0, sample.stderr[-3000:]
    text = sample.stdout.removesuffix("\n")
    assert text.startswith("the") and len(text) == 3 + 200 and set(text) <= set(corpus)
