"""Character-level text: a corpus becomes token ids over its sorted characters, split into contiguous
train / val / test stretches (the last ``val_fraction`` and ``test_fraction`` of the text are held out,
as the lecture notes hold out the last 10 %).

``data=text data.path=FILE`` reads any UTF-8 file; other corpora subclass :class:`TextDataModule` and
override :meth:`TextDataModule.source_file`. Every corpus is prepared once into a token file under the
data folder and memory-mapped (token_file.py): the splits are views of the mapping.
"""

from pathlib import Path

import torch

from seqexp.data.datamodule import StreamDataModule
from seqexp.data.spec import DataSpec
from seqexp.data.token_file import prepared_tokens
from seqexp.data.vocab import Vocab
from seqexp.errors import ConfigError


def contiguous_splits(
    ids: torch.Tensor, val_fraction: float, test_fraction: float
) -> dict[str, torch.Tensor]:
    """``train | val | test`` in text order; ``test`` only when ``test_fraction`` > 0."""
    n_val = int(len(ids) * val_fraction)
    n_test = int(len(ids) * test_fraction)
    n_train = len(ids) - n_val - n_test
    splits = {"train": ids[:n_train], "val": ids[n_train : n_train + n_val]}
    if test_fraction > 0:
        splits["test"] = ids[n_train + n_val :]
    return splits


class TextDataModule(StreamDataModule):
    """A character corpus as streams of token ids; the vocabulary is every character of the corpus."""

    item_name = "characters"

    def __init__(
        self,
        *,
        data_dir: str,
        path: str | None,
        val_fraction: float,
        test_fraction: float,
        batch_size: int | None,
        seq_length: int,
        eval_burn_in: int | None,
    ) -> None:
        """The arguments are the keys of conf/_corpus.yaml and conf/data/text.yaml, whose defaults are there
        and only there."""
        super().__init__(batch_size, seq_length, eval_burn_in)
        self.data_dir = Path(data_dir).expanduser()
        self.path = path
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.vocab: Vocab | None = None
        self.source_sha256: str | None = None

    def source_file(self) -> Path:
        """The corpus: the file at ``data.path`` (corpora with a source of their own override this)."""
        if not self.path:
            raise ConfigError("data.path is missing: data=text needs data.path=FILE, a UTF-8 text file")
        return Path(self.path).expanduser()

    def load_splits(self) -> dict[str, torch.Tensor]:
        # The vocabulary covers the held-out text too, so every split (and any prime taken from the
        # corpus) can be encoded; sorting makes it the same on every run and every machine.
        prepared = prepared_tokens(self.source_file(), self.data_dir)
        self.vocab, self.source_sha256 = prepared.vocab, prepared.source_sha256
        # Compact ids (uint8/16/32) straight from the mapping; WindowStream serves windows as int64.
        return contiguous_splits(torch.from_numpy(prepared.tokens), self.val_fraction, self.test_fraction)

    @property
    def spec(self) -> DataSpec:
        self.setup()
        assert self.vocab is not None, "setup() loads the splits, which sets the vocabulary"
        size = len(self.vocab)
        return DataSpec(
            input_size=size,
            output_size=size,
            tokens=True,
            vocab=self.vocab.chars,
            eval_burn_in=self.burn_in,
            source_sha256=self.source_sha256,
        )
