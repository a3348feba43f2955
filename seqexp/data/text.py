"""Text: a corpus becomes token ids, split into contiguous train / val / test stretches (the last
``val_fraction`` and ``test_fraction`` of the text are held out, as the lecture notes hold out the last
10 %). ``data.tokenizer`` says what a token is: a character (ids over the corpus's sorted characters), a
word, or a byte-level BPE piece (seqexp/data/tokenizer.py), the last two learnt from the training split.

``data=text data.path=FILE`` reads any UTF-8 file; other corpora subclass :class:`TextDataModule` and
override :meth:`TextDataModule.source_file`. Every corpus is prepared once into a token file under the
data folder and memory-mapped (token_file.py): the splits are views of the mapping.
"""

from dataclasses import replace
from pathlib import Path

import torch

from seqexp.data.datamodule import StreamDataModule
from seqexp.data.spec import DataSpec
from seqexp.data.token_file import Tokenization, prepared_tokens, split_lengths
from seqexp.data.tokenizer import UNITS, TrainedTokenizer, check_tokenizer_options
from seqexp.data.vocab import Vocab
from seqexp.errors import ConfigError


def contiguous_splits(
    ids: torch.Tensor, val_fraction: float, test_fraction: float
) -> dict[str, torch.Tensor]:
    """``train | val | test`` in text order; ``test`` only when ``test_fraction`` > 0."""
    return cut_splits(ids, split_lengths(len(ids), val_fraction, test_fraction))


def cut_splits(ids: torch.Tensor, lengths: dict[str, int]) -> dict[str, torch.Tensor]:
    """``ids`` cut into consecutive splits of ``lengths`` (train, val[, test]), in text order."""
    return dict(zip(lengths, ids.split(list(lengths.values())), strict=True))


class TextDataModule(StreamDataModule):
    """A text corpus as streams of token ids: characters (the vocabulary is every character of the
    corpus), words or BPE pieces."""

    def __init__(
        self,
        *,
        data_dir: str,
        path: str | None,
        tokenizer: str,
        vocab_size: int,
        val_fraction: float,
        test_fraction: float,
        batch_size: int | None,
        seq_length: int,
        eval_burn_in: int | None,
    ) -> None:
        """The arguments are the keys of conf/_corpus.yaml and conf/data/text.yaml, whose defaults are there
        and only there."""
        check_tokenizer_options(tokenizer, vocab_size)
        super().__init__(batch_size, seq_length, eval_burn_in)
        self.data_dir = Path(data_dir).expanduser()
        self.path = path
        self.tokenizer_kind = tokenizer
        self.vocab_size = vocab_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.item_name = UNITS[tokenizer]
        self.tokenizer: Vocab | TrainedTokenizer | None = None
        self.source_sha256: str | None = None

    def source_file(self) -> Path:
        """The corpus: the file at ``data.path`` (corpora with a source of their own override this)."""
        if not self.path:
            raise ConfigError("data.path is missing: data=text needs data.path=FILE, a UTF-8 text file")
        return Path(self.path).expanduser()

    def tokenization(self) -> Tokenization | None:
        """What a trained tokenizer is learnt from (None: characters need no training)."""
        if self.tokenizer_kind == "char":
            return None
        return Tokenization(self.tokenizer_kind, self.vocab_size, self.val_fraction, self.test_fraction)

    def load_splits(self) -> dict[str, torch.Tensor]:
        # A character vocabulary covers the held-out text too, so every split (and any prime taken from
        # the corpus) can be encoded; sorting makes it the same on every run and every machine. A trained
        # tokenizer learns from the training split only (its token file records where the splits end).
        prepared = prepared_tokens(self.source_file(), self.data_dir, self.tokenization())
        self.tokenizer, self.source_sha256 = prepared.tokenizer, prepared.source_sha256
        # Compact ids (uint8/16/32) straight from the mapping; WindowStream serves windows as int64.
        ids = torch.from_numpy(prepared.tokens)
        if prepared.split_sizes is None:
            return contiguous_splits(ids, self.val_fraction, self.test_fraction)
        return cut_splits(ids, prepared.split_sizes)

    @property
    def spec(self) -> DataSpec:
        self.setup()
        assert self.tokenizer is not None, "setup() loads the splits, which sets the tokenizer"
        size = len(self.tokenizer)
        if isinstance(self.tokenizer, TrainedTokenizer):
            unknown_chars = self.tokenizer.unknown_chars
            spec = DataSpec(
                size, size, tokens=True, tokenizer=self.tokenizer.json, unknown_chars=unknown_chars
            )
        else:
            spec = DataSpec(size, size, tokens=True, vocab=self.tokenizer.chars)
        return replace(spec, eval_burn_in=self.burn_in, source_sha256=self.source_sha256)
