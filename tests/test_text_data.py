"""Character vocabulary, contiguous splits and the errors of data=text (in-process; the CLI runs are in
test_text_cli.py)."""

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from seqexp.data.text import TextDataModule, contiguous_splits
from seqexp.data.vocab import Vocab
from seqexp.errors import ConfigError
from seqexp.tasks.train import size_advice

# What these tests hold out and how they cut windows, unless one says otherwise (TextDataModule has no
# defaults of its own).
SPLITS = dict(
    tokenizer="char",
    vocab_size=1024,
    val_fraction=0.1,
    test_fraction=0.0,
    batch_size=32,
    seq_length=100,
    eval_burn_in=None,
)


def text_data(data_dir: Path, path: Path | None, **options: object) -> TextDataModule:
    return TextDataModule(data_dir=str(data_dir), path=path and str(path), **(SPLITS | options))


def test_vocab_of_a_corpus_is_sorted_and_independent_of_text_order(tmp_path):
    vocabs = []
    for name, text in (("a.txt", "hello, world\n"), ("b.txt", "\ndlrow ,olleh")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        data = text_data(tmp_path / "data", tmp_path / name)
        vocabs.append(data.spec.vocab)
    assert vocabs[0] == vocabs[1] == ("\n", " ", ",", "d", "e", "h", "l", "o", "r", "w")


def test_encode_decode_round_trip_with_non_ascii():
    text = "Ça — naïve?\nΩ"
    vocab = Vocab(sorted(set(text)))
    ids = vocab.encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert ids.tolist() == [vocab.chars.index(c) for c in text]


def test_encode_refuses_characters_outside_the_vocabulary():
    vocab = Vocab("abc")
    with pytest.raises(ValueError, match="2 character"):
        vocab.encode("abxz")


def test_contiguous_splits_keep_text_order():
    ids = torch.arange(1000)
    splits = contiguous_splits(ids, val_fraction=0.1, test_fraction=0.05)
    assert splits["train"].tolist() == list(range(850))
    assert splits["val"].tolist() == list(range(850, 950))
    assert splits["test"].tolist() == list(range(950, 1000))
    assert "test" not in contiguous_splits(ids, 0.1, 0.0)


def test_text_datamodule_spec_comes_from_the_file(tmp_path):
    path = tmp_path / "corpus.txt"
    text = "to be or not to be\n" * 200
    path.write_text(text, encoding="utf-8")
    data = text_data(tmp_path, path, val_fraction=0.1, batch_size=4, seq_length=10)
    spec = data.spec
    assert spec.tokens and spec.vocab == tuple(sorted(set(text)))
    assert spec.input_size == spec.output_size == len(set(text))
    assert Vocab(spec.vocab).decode(data.splits["val"]) == text[len(text) - len(text) // 10 :]
    x, y = data.stream("train")[0]
    assert x.shape == (4, 10) and torch.equal(x[:, 1:], y[:, :-1])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"caf\xe9 latin-1\n", "is not UTF-8 text (byte 0xe9 on line 1, at byte offset 3, is invalid)"),
    ],
    ids=["missing", "empty", "not-utf8"],
)
def test_bad_text_files_are_named(tmp_path, content, expected):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match="data.path=") as error:
        text_data(tmp_path / "data", path).setup()
    assert not (tmp_path / "data").exists()  # nothing prepared from a bad file
    assert expected in str(error.value) and str(path) in str(error.value)


def test_text_without_a_path_says_how_to_give_one(tmp_path):
    with pytest.raises(ConfigError, match=r"data.path is missing: data=text needs data.path=FILE"):
        text_data(tmp_path, None).setup()


def test_too_short_corpus_says_how_many_characters_are_needed(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcdefghij" * 30, encoding="utf-8")  # 270 train characters
    data = text_data(tmp_path, path, batch_size=8, seq_length=50)
    with pytest.raises(ConfigError) as error:
        data.check_streams(pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False))
    message = str(error.value)
    assert "the train split has 270 characters" in message
    assert "it needs at least 408 characters" in message  # 8 rows x (50 + 1)


def test_size_advice_names_characters_and_the_direction_to_move():
    assert "much smaller than the data" in size_advice(10_000, 5_000_000, "characters")
    assert "5,000,000 training characters" in size_advice(10_000, 5_000_000, "characters")
    assert "will overfit" in size_advice(3_000_000, 100_000, "characters")
    assert "same order of magnitude" in size_advice(1_000_000, 1_000_000, "characters")
