"""scripts/eval.py: a checkpoint scored on a split as its training run scored it, on another corpus of
the same characters, and every bad input as one error line."""

import json

import pytest

from tests.helpers import SMALL_CORPUS_TRAINING, assert_user_error, grammar_corpus


@pytest.fixture
def trained_text_run(tmp_path, run_script):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(grammar_corpus(800), encoding="utf-8")
    run = tmp_path / "run"
    result = run_script(
        "train.py", "data=text", f"data.path={corpus}", *SMALL_CORPUS_TRAINING, "model=gru",
        "model.hidden_size=16",
        "trainer.max_steps=20", "trainer.enable_progress_bar=false", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def test_eval_reproduces_the_runs_val_loss_and_scores_another_corpus(tmp_path, trained_text_run, run_script,
                                                                     best_val_loss):  # fmt: skip
    same = run_script("eval.py", f"ckpt={trained_text_run}", "split=val", f"out={tmp_path}/val.json")
    assert same.returncode == 0, same.stderr[-3000:]
    metrics = json.loads((tmp_path / "val.json").read_text())
    assert metrics["loss"] == pytest.approx(best_val_loss(trained_text_run), rel=1e-5)
    assert metrics["bpc"] == pytest.approx(metrics["loss"] / 0.6931471805599453, rel=1e-6)
    assert same.stdout.startswith(f"val/loss {metrics['loss']:.6g} val/bpc")

    other = tmp_path / "other.txt"
    other.write_text(grammar_corpus(3000, seed=7), encoding="utf-8")
    result = run_script(
        "eval.py", f"ckpt={trained_text_run}/checkpoints/last.ckpt", "data=text", f"data.path={other}",
        f"out={tmp_path}/other.json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # The same grammar, unseen sentences: close to the run's own held-out loss, far below uniform.
    assert json.loads((tmp_path / "other.json").read_text())["loss"] < metrics["loss"] * 1.2


@pytest.mark.slow  # seven processes
def test_eval_refusals_are_one_line(tmp_path, trained_text_run, run_script):
    unknown = tmp_path / "greek.txt"
    unknown.write_text("λόγος " * 500, encoding="utf-8")
    cases = [
        (["data=text", f"data.path={unknown}"], "character(s) the model does not know"),
        (["split=test"], "the data has no test split; hold one out with +data.test_fraction=0.1"),
        (["split=train"], "split='train' is invalid: it must be one of val, test"),
        ([f"out={tmp_path}"], "must be a file in an existing folder"),
        (["+data.val_fraction=1.5"], "data.val_fraction=1.5 is invalid"),
        (
            ["+data.tokenizer=bpe", "+data.vocab_size=300"],
            "reads 23 characters, but the data gives a bpe vocabulary",
        ),
    ]
    for overrides, message in cases:
        assert_user_error(run_script("eval.py", f"ckpt={trained_text_run}", *overrides), message)
    assert_user_error(run_script("eval.py", f"ckpt={tmp_path}"), "is a folder with no checkpoints/last.ckpt")
