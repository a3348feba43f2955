"""data.tokenizer=word|bpe in-process (issue 22): learnt from the training split only, lossless for bpe,
unknown words as one <unk>, bits per character counted over exactly the scored tokens, and the bad
settings refused in one line. The scripts end to end (DDP, resume, sampling without the corpus):
tests/test_tokenizer_app.py."""

import json
import logging
import math

import pytest
import pytorch_lightning as pl
import torch

from seqexp.data import tokenizer as tokenizer_module
from seqexp.data.streams import rank_rows, windows_per_row
from seqexp.data.text import TextDataModule
from seqexp.data.token_file import Tokenization, prepared_tokens, token_paths
from seqexp.data.tokenizer import UNKNOWN, TrainedTokenizer
from seqexp.errors import user_error
from seqexp.module import SequenceLightningModule
from seqexp.sampling_options import check_sampling_options
from seqexp.tasks.train import train
from tests.helpers import assert_one_line, grammar_corpus, hydra_job_config, model_options, read_events

MIXED = "Grüße aus Köln.\r\nΚαλημέρα κόσμε.\r\n你好，世界。\r\nnaïve café — ½ × 3\r\n"


def text_data(tmp_path, corpus: str, tokenizer: str, vocab_size: int = 300, **options) -> TextDataModule:
    source = tmp_path / "corpus.txt"
    source.write_bytes(corpus.encode("utf-8"))
    settings = dict(val_fraction=0.2, test_fraction=0.0, batch_size=2, seq_length=8, eval_burn_in=0) | options
    return TextDataModule(
        data_dir=str(tmp_path / "data"),
        path=str(source),
        tokenizer=tokenizer,
        vocab_size=vocab_size,
        **settings,
    )


def test_bpe_round_trips_any_utf8_text_and_counts_its_characters(tmp_path):
    data = text_data(tmp_path, MIXED * 40, "bpe", vocab_size=320)
    data.setup()
    tokenizer = data.tokenizer
    assert isinstance(tokenizer, TrainedTokenizer) and len(tokenizer) == 320
    # Emoji, a lone CR, a tab, a combining accent and a script the training text never had: bytes all.
    unseen = "Emoji 😀🎉👩‍👩‍👧 and CRLF\r\nlone\rCR\ttab, e\u0301, עברית, ＦＵＬＬ\r\n\n"
    for text in (MIXED, unseen, MIXED + unseen):
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids) == text
        # Each token counts the characters that start in it: a text's tokens count all of its characters.
        assert float(tokenizer.char_lengths()[ids].sum()) == len(text)
    # The token file holds the corpus as it is read (CRLF read as LF, as for characters), split by split.
    as_read = (MIXED * 40).replace("\r\n", "\n")
    assert "".join(tokenizer.decode(data.splits[split]) for split in ("train", "val")) == as_read


def test_a_corpus_without_line_breaks_is_read_in_bounded_pieces_and_round_trips(tmp_path, monkeypatch):
    # Lines are the unit of encoding: one line as long as the corpus is cut (before a space) rather than
    # held whole, here every 200 characters of 500-byte chunks.
    monkeypatch.setattr(tokenizer_module, "LONGEST_LINE", 200)
    text = grammar_corpus(300).replace("\n", " ")
    source = tmp_path / "corpus.txt"
    source.write_text(text, encoding="utf-8")
    prepared = prepared_tokens(source, tmp_path, Tokenization("bpe", 280, 0.1, 0.0), chunk_bytes=500)
    batches = list(tokenizer_module.lines_of([text[i : i + 500] for i in range(0, len(text), 500)]))
    assert max(len(line) for lines in batches for line in lines) <= 200 + 500
    assert prepared.tokenizer.decode(torch.from_numpy(prepared.tokens.astype("int64"))) == text


@pytest.mark.parametrize("kind", ["bpe", "word"])
def test_the_tokenizer_never_sees_held_out_text(tmp_path, kind):
    # "qx" occurs only in the last 20 % of the text, the validation split, and often enough there that a
    # tokenizer trained on it would make it a vocabulary entry.
    train_text = grammar_corpus(400)
    held_out = "the qxqx sees the qxqxqx.\n" * 100
    text = train_text + held_out[: len(train_text) // 4]
    data = text_data(tmp_path, text, kind, vocab_size=300, val_fraction=0.2)
    data.setup()
    assert data.tokenizer is not None
    entries = data.tokenizer.tokenizer.get_vocab()
    assert not [entry for entry in entries if "qx" in entry]
    held_out_part = text[len(text) - int(len(text) * 0.2) :]  # where a character split cuts the text
    if kind == "bpe":
        assert data.tokenizer.decode(data.splits["val"]) == held_out_part
    else:  # every "qx" word of the validation split is unknown
        assert "qx" not in data.tokenizer.decode(data.splits["val"]) and "qx" in held_out_part


def test_word_mode_reads_unknown_words_as_one_unk_and_logs_their_count(tmp_path, caplog):
    # Blank lines too: the vocabulary is learnt line by line as the text is encoded (a "\n\n" word
    # learnt from whole paragraphs would leave each "\n" unknown).
    text = "the cat sees the dog.\n\n" * 50 + "the cow sees the hen.\n\n" * 10  # the last 20 %: 12 lines
    with caplog.at_level(logging.INFO, logger="seqexp.data.token_file"):
        data = text_data(tmp_path, text, "word", vocab_size=100)
        data.setup()
    tokenizer = data.tokenizer
    assert isinstance(tokenizer, TrainedTokenizer)
    assert tokenizer.decode(tokenizer.encode("the cat sees the dog.\n")) == "the cat sees the dog.\n"
    assert tokenizer.decode(tokenizer.encode("the emu sees")) == f"the{UNKNOWN} sees"
    # The held-out " cow" and " hen" (10 each, never in the training split) are its unknown words.
    unknown = int((data.splits["val"] == tokenizer.unknown_id).sum())
    assert unknown == 20
    assert not (data.splits["train"] == tokenizer.unknown_id).any()
    assert f"{unknown} of the" in caplog.text and f"read as {UNKNOWN}" in caplog.text
    # An <unk> counts as the mean length of the words it replaced (" cow", " hen": 4 characters).
    assert float(tokenizer.char_lengths()[tokenizer.unknown_id]) == 4.0
    with pytest.raises(Exception) as error:
        check_sampling_options("the emu", 10, None, 1.0, tokenizer, prefix="")
    assert_one_line(error.value, "prime='the emu' has 1 word(s) outside the model's vocabulary", "' emu'")


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_bpc_is_the_total_nats_over_the_characters_of_the_scored_tokens(tmp_path, kind):
    # Rows of 3, windows of 8, the first window only warms up and the tail is dropped: the characters
    # counted are those of the scored targets, decoded row by row here.
    data = text_data(tmp_path, grammar_corpus(120), kind, batch_size=3, eval_burn_in=1)
    torch.manual_seed(0)
    module = SequenceLightningModule(
        model=model_options("torch.nn.GRU", 8), data=data.spec.as_dict(), optim={}
    )
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    logged = trainer.validate(module, datamodule=data, verbose=False)[0]

    rows = rank_rows(data.splits["val"], batch_size=3).long()
    windows = windows_per_row(len(data.splits["val"]), 3, 8)
    assert windows > 2
    model, state, nats = module.model.eval(), None, 0.0
    with torch.no_grad():
        for k in range(windows):
            x, y = rows[:, k * 8 : (k + 1) * 8], rows[:, k * 8 + 1 : (k + 1) * 8 + 1]
            output, state = model(x, state)
            if k >= 1:
                nats += float(
                    torch.nn.functional.cross_entropy(output.flatten(0, 1), y.flatten(), reduction="sum")
                )
    assert data.tokenizer is not None
    characters = sum(len(data.tokenizer.decode(row[8 + 1 : windows * 8 + 1])) for row in rows)
    assert logged["val/bpc"] == pytest.approx(nats / characters / math.log(2), rel=1e-5)
    tokens = 3 * 8 * (windows - 1)
    assert logged["val/loss"] == pytest.approx(nats / tokens, rel=1e-5)
    if kind == "char":  # what it always was, to the float32 the metrics are logged in
        assert logged["val/bpc"] == pytest.approx(logged["val/loss"] / math.log(2), rel=2e-7)
    else:  # a token is about two characters of this text
        assert characters > 1.5 * tokens


def test_each_tokenization_of_a_corpus_has_its_own_token_file(tmp_path):
    source = tmp_path / "corpus.txt"
    source.write_text(grammar_corpus(200), encoding="utf-8")
    settings = [None, Tokenization("bpe", 280, 0.1, 0.0), Tokenization("bpe", 270, 0.1, 0.0)]
    settings += [Tokenization("bpe", 280, 0.2, 0.0), Tokenization("word", 280, 0.1, 0.0)]
    paths = [token_paths(source, tmp_path, tokenization) for tokenization in settings]
    assert len(set(paths)) == len(settings)
    first = prepared_tokens(source, tmp_path, settings[1])
    sidecar = json.loads(paths[1][1].read_text())
    assert sidecar["tokenization"] == {
        "kind": "bpe",
        "vocab_size": 280,
        "val_fraction": 0.1,
        "test_fraction": 0.0,
    }
    assert sidecar["tokens"] == sum(sidecar["splits"].values()) == len(first.tokens)
    assert first.tokens.dtype == "uint16"
    written = paths[1][0].stat().st_mtime_ns
    again = prepared_tokens(source, tmp_path, settings[1])  # reused: nothing trained or written again
    assert paths[1][0].stat().st_mtime_ns == written and again.split_sizes == first.split_sizes
    assert isinstance(again.tokenizer, TrainedTokenizer) and again.tokenizer.json == sidecar["tokenizer"]
    # Trained again from scratch, it is the same tokenizer: a resume whose data folder was lost still matches.
    for path in paths[1]:
        path.unlink()
    assert prepared_tokens(source, tmp_path, settings[1]).tokenizer.json == sidecar["tokenizer"]


TEXT = ["data=text", "data.path=corpus.txt", "seq_length=10", "data.batch_size=2", "model.hidden_size=8"]
TOKENIZER_MISTAKES = [
    (
        ["data.tokenizer=wordpiece"],
        "data.tokenizer='wordpiece' is invalid: it must be one of char, word, bpe",
    ),
    (
        ["data.tokenizer=bpe", "data.vocab_size=100"],
        "data.vocab_size=100 is too small for data.tokenizer=bpe",
    ),
    (["data.tokenizer=word", "data.vocab_size=1"], "data.vocab_size=1 is too small for data.tokenizer=word"),
    (
        ["data.tokenizer=bpe", "data.vocab_size=5000"],
        "data.vocab_size=5000 is too large for the training split of",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "message"), TOKENIZER_MISTAKES, ids=[m[1][:30] for m in TOKENIZER_MISTAKES]
)
def test_bad_tokenizer_settings_are_one_line_before_training(tmp_path, monkeypatch, overrides, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text(grammar_corpus(100), encoding="utf-8")
    with (
        hydra_job_config("train", [*TEXT, *overrides], tmp_path / "run") as cfg,
        pytest.raises(Exception) as error,
    ):
        train(cfg)
    assert_one_line(user_error(error.value) or error.value, message)
    assert not (tmp_path / "run" / "tensorboard").exists(), "nothing may be trained or logged"


def test_the_objective_of_a_bpe_run_is_its_best_val_loss_per_character(tmp_path, monkeypatch):
    # A search that mixes tokenizers ranks trials by what the train task returns: nats per character,
    # not per token, which would favour whichever tokenizer has the longer tokens.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text(grammar_corpus(150), encoding="utf-8")
    overrides = [*TEXT, "data.tokenizer=bpe", "data.vocab_size=280", "trainer.max_steps=12",
                 "trainer.val_check_interval=4", "trainer.check_val_every_n_epoch=null"]  # fmt: skip
    with hydra_job_config("train", overrides, tmp_path / "run") as cfg:
        objective = train(cfg)
    events = read_events(tmp_path / "run")
    losses = [event.value for event in events.Scalars("val/loss")]
    per_char = [event.value * math.log(2) for event in events.Scalars("val/bpc")]
    assert len(losses) >= 3
    assert objective == pytest.approx(min(per_char), rel=1e-6)
    assert objective < 0.8 * min(losses), "a bpe token stands for more than one character"
