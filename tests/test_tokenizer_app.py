"""data.tokenizer=bpe through the real scripts (issue 22): two DDP ranks x B train like one process x 2B,
eval.py scores a bpe checkpoint as its run did and refuses data cut by another tokenizer, a resume
refuses a changed vocabulary, and sampling needs only the checkpoint. The in-process tests:
tests/test_tokenizer.py; an exact resume of a bpe run: tests/test_resume.py."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import SMALL_CORPUS_TRAINING, assert_user_error, grammar_corpus, read_events
from tests.launching import run_train

pytestmark = pytest.mark.slow  # real processes

BPE = ["data.tokenizer=bpe", "data.vocab_size=280"]
TINY_TEXT = [
    "data=text",
    *SMALL_CORPUS_TRAINING,
    *BPE,
    "seq_length=10",
    "model=gru",
    "model.hidden_size=16",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "callbacks.text_sample.length=20",
]


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in read_events(run_dir).Scalars(tag)]


def test_two_ddp_ranks_train_a_bpe_model_like_one_process_with_twice_the_batch(tmp_path):
    (tmp_path / "corpus.txt").write_text(grammar_corpus(300), encoding="utf-8")
    # 30 steps of an epoch of 112 windows, validated every 10.
    common = [*TINY_TEXT, "data.path=corpus.txt", "trainer.max_steps=30", "trainer.val_check_interval=10"]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    first = run_train(*common, "data.batch_size=4", f"hydra.run.dir={single}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_train(
        *common,
        "trainer=ddp_cpu",
        "trainer.devices=2",
        "data.batch_size=2",
        f"hydra.run.dir={ddp}",
        cwd=tmp_path,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    one, two = scalars(single, "train/loss"), scalars(ddp, "train/loss")
    assert len(one) == len(two) == 30
    assert [step for step, _ in two] == [step for step, _ in one]
    assert [loss for _, loss in two] == pytest.approx([loss for _, loss in one], abs=1e-5)
    # The ranks' rows hold different numbers of characters: bpc sums them across the ranks.
    assert len(scalars(single, "val/bpc")) == 3
    for tag in ("val/loss", "val/bpc"):
        assert [v for _, v in scalars(ddp, tag)] == pytest.approx(
            [v for _, v in scalars(single, tag)], abs=1e-6
        )


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bpe")
    (root / "corpus.txt").write_text(grammar_corpus(300), encoding="utf-8")
    run = root / "run"
    result = run_train(
        *TINY_TEXT,
        f"data.path={root / 'corpus.txt'}",
        "data.batch_size=8",
        "trainer.max_steps=20",
        f"hydra.run.dir={run}",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def test_eval_scores_a_bpe_checkpoint_as_its_run_did_and_refuses_another_tokenizer(bpe_run, run_script):
    root = bpe_run.parent
    out = root / "val.json"
    same = run_script("eval.py", f"ckpt={bpe_run}", f"out={out}")
    assert same.returncode == 0, same.stderr[-3000:]
    metrics = json.loads(out.read_text())
    (last_bpc,) = [value for step, value in scalars(bpe_run, "val/bpc") if step == 19]
    assert metrics["bpc"] == pytest.approx(last_bpc, rel=1e-5)
    mismatches = [
        (
            ["+data.vocab_size=270"],
            "reads a bpe vocabulary of 280 tokens, but the data gives a bpe vocabulary of 270",
        ),
        (["+data.tokenizer=char"], "reads a bpe vocabulary of 280 tokens, but the data gives 23 characters"),
    ]
    for overrides, message in mismatches:
        assert_user_error(run_script("eval.py", f"ckpt={bpe_run}", *overrides), message)


def test_a_resume_refuses_a_changed_bpe_vocabulary_in_one_line(bpe_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(bpe_run, run)
    saved = run / ".hydra" / "config.yaml"
    config = OmegaConf.load(saved)
    config.data.vocab_size = 270
    OmegaConf.save(config, saved)
    result = run_train(f"resume={run}", "trainer.max_steps=30", cwd=bpe_run.parent)
    assert_user_error(
        result, "reads a bpe vocabulary of 280 tokens, but the run's data now gives a bpe vocabulary of 270"
    )
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 20


def test_sampling_from_a_bpe_checkpoint_needs_no_corpus(bpe_run, tmp_path, run_script):
    checkpoint = tmp_path / "model.ckpt"
    shutil.copy(bpe_run / "checkpoints" / "last.ckpt", checkpoint)
    # The tokenizer travels as plain JSON text, which weights_only loading accepts.
    data = torch.load(checkpoint, weights_only=True)["hyper_parameters"]["data"]
    assert isinstance(data["tokenizer"], str) and json.loads(data["tokenizer"])["model"]["type"] == "BPE"
    assert (data["input_size"], data["vocab"]) == (280, [])
    shutil.rmtree(bpe_run.parent / "data", ignore_errors=True)
    (bpe_run.parent / "corpus.txt").unlink()
    # A prime with an emoji and Greek the corpus never had: byte-level BPE encodes any text.
    result = run_script(
        "sample.py", f"ckpt={checkpoint}", "prime='the λ😀'", "length=40", f"out={tmp_path}/s.txt"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "s.txt").read_text(encoding="utf-8")
    assert text.startswith("the λ😀") and len(text) > len("the λ😀") + 20  # 40 tokens, ~2 characters each
    assert result.stdout == text + "\n"
