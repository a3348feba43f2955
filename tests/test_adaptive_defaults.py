"""Defaults that adapt instead of refusing (issue 10): the sine burn-in on a short validation split, and
the text sample's prime on a corpus without the letters of "The". What a user set is still refused."""

import ast

import pytest

from seqexp.tasks.train import train
from tests.helpers import SMALL_CORPUS_TRAINING, assert_one_line, hydra_job_config, read_events

FAST = ["trainer.enable_progress_bar=false", "model.hidden_size=8"]


@pytest.mark.slow  # two gloo processes: about 30 s on 2 shared cores
def test_the_default_config_under_two_ddp_ranks_trains_with_the_burn_in_adapted(tmp_path, run_script):
    """README: `python scripts/train.py trainer=ddp_cpu trainer.devices=2`, on real gloo processes."""
    result = run_script(
        "train.py", "trainer=ddp_cpu", "trainer.devices=2", *FAST, "trainer.max_steps=30",
        f"hydra.run.dir={tmp_path}/run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count("data.eval_burn_in: 0 rather than 1") == 1, log
    assert min(e.value for e in read_events(tmp_path / "run").Scalars("val/loss")) < 0.5


def test_fast_dev_run_works_on_the_default_config(tmp_path, caplog):
    with hydra_job_config("train", [*FAST, "+trainer.fast_dev_run=true"], tmp_path) as cfg:
        objective = train(cfg)
    assert objective < 10 and "data.eval_burn_in: 0 rather than 1" in caplog.text


def test_a_burn_in_the_user_set_is_still_refused(tmp_path):
    overrides = [*FAST, "+trainer.fast_dev_run=true", "data.eval_burn_in=1"]
    with hydra_job_config("train", overrides, tmp_path) as cfg, pytest.raises(Exception) as error:
        train(cfg)
    assert_one_line(error.value, "data.eval_burn_in=1 leaves nothing to score")


GREEK = "Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν, καὶ θεὸς ἦν ὁ λόγος.\n" * 60


def text_run(tmp_path, *overrides: str) -> list[str]:
    corpus = tmp_path / "greek.txt"
    corpus.write_text(GREEK, encoding="utf-8")
    return [
        "data=text", f"data.path={corpus}", *SMALL_CORPUS_TRAINING, "seq_length=20", "data.batch_size=4",
        *FAST,
        "trainer.max_steps=4", "callbacks.text_sample.length=20", *overrides,
    ]  # fmt: skip


def test_a_corpus_without_the_default_prime_samples_from_its_held_out_text(tmp_path, caplog):
    with hydra_job_config("train", text_run(tmp_path), tmp_path / "run") as cfg:
        train(cfg)
    val_start = GREEK[int(len(GREEK) * 0.9) :][:3]
    assert f"callbacks.text_sample.prime: {val_start!r}, taken from the held-out text" in caplog.text
    events = read_events(tmp_path / "run")
    sample = events.Tensors("val/sample/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert sample.strip().startswith(val_start.strip()), sample


def test_a_word_model_primes_with_held_out_words_it_knows(tmp_path, caplog):
    # Five entries: the held-out text starts with "Ἐν", a word outside them, so its first tokens decode
    # to an <unk>, which no prime can hold; the prime is the first stretch the model reads back.
    overrides = ["data.tokenizer=word", "data.vocab_size=5", "callbacks.text_sample.top_k=null"]
    with hydra_job_config("train", text_run(tmp_path, *overrides), tmp_path / "run") as cfg:
        train(cfg)
    (line,) = [line for line in caplog.text.splitlines() if "callbacks.text_sample.prime:" in line]
    prime = ast.literal_eval(line.split("prime: ")[1].split(", taken from")[0])
    assert "<unk>" not in prime and prime in GREEK
    sample = read_events(tmp_path / "run").Tensors("val/sample/text_summary")[-1].tensor_proto.string_val[0]
    assert sample.decode().strip().startswith(prime.strip())


def test_a_prime_the_user_typed_is_still_refused(tmp_path):
    overrides = text_run(tmp_path, "callbacks.text_sample.prime=The")
    with hydra_job_config("train", overrides, tmp_path) as cfg, pytest.raises(Exception) as error:
        train(cfg)
    assert_one_line(error.value.__cause__ or error.value, "callbacks.text_sample.prime='The' has characters")
