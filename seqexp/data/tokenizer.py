"""How text becomes token ids and back: characters (vocab.py), or a vocabulary of words or of byte-level
BPE pieces that Hugging Face's tokenizers learns from a corpus's training split (token_file.py trains it).

- ``char``: one id per character of the corpus (:class:`seqexp.data.vocab.Vocab`).
- ``word``: a word is a run of letters or of digits with at most one space before it, or a run of
  punctuation; a run of spaces or line breaks is a word of its own, so decoding gives the text back. The
  ``vocab_size`` most frequent words of the training split are the vocabulary (``<unk>`` included); any
  other word is read as ``<unk>``.
- ``bpe``: byte-level BPE: the 256 bytes plus the merges learnt from the training split, ``vocab_size``
  ids in all. Every UTF-8 text encodes, and decodes back exactly.

Text is learnt from and encoded line by line (each line with its line break), so a token never spans two
lines: a corpus read in chunks and a prime typed on the command line are cut into tokens the same way,
and the lines of a chunk are encoded in parallel.

Bits per character need each token's length in characters (:meth:`TrainedTokenizer.char_lengths`). A
BPE piece may hold part of a character (an emoji is four bytes); it counts the characters that start in
it, so the lengths of a text's tokens add up to its number of characters. ``<unk>`` stands for words of
many lengths: it counts as the mean length of the words it replaced in the corpus (``unknown_chars``).
"""

from collections.abc import Iterable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from seqexp.data.vocab import Vocab
from seqexp.errors import ConfigError

if TYPE_CHECKING:
    from seqexp.data.spec import DataSpec

TOKENIZERS = ("char", "word", "bpe")
# What one token is called in messages (a window of 100 tokens, a split of 5,000 words).
UNITS = {"char": "characters", "word": "words", "bpe": "tokens"}
UNKNOWN = "<unk>"
BYTES = 256  # byte-level BPE starts from every byte, so that any text encodes
LONGEST_LINE = 1 << 20  # characters; a longer line is cut (lines_of)
# GPT-2's split of text into words, which keeps every character: contractions, letters or digits with
# at most one space before them, punctuation likewise, and runs of whitespace. GPT-2 leaves the last
# space of a run to the word after it; here a run is one word wherever it stands, so that a prime ending
# in spaces or line breaks reads them as the corpus did.
WORD_PATTERN = r"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+"


class TextTokenizer(Protocol):
    """What sampling, evaluation and the metrics need of a tokenizer, whichever it is."""

    unit: str

    def __len__(self) -> int: ...

    def encode(self, text: str) -> torch.Tensor: ...

    def decode(self, ids: torch.Tensor | Iterable[int]) -> str: ...

    def char_lengths(self) -> torch.Tensor: ...

    def unencodable(self, text: str) -> str | None: ...


def check_tokenizer_options(tokenizer: str, vocab_size: int) -> None:
    """ConfigError for an unknown ``data.tokenizer`` or a ``data.vocab_size`` it cannot have."""
    if tokenizer not in TOKENIZERS:
        raise ConfigError(
            f"data.tokenizer={tokenizer!r} is invalid: it must be one of {', '.join(TOKENIZERS)}"
        )
    if tokenizer == "char":
        return  # the corpus's characters are the vocabulary: data.vocab_size is not used
    smallest = {"word": 2, "bpe": BYTES}[tokenizer]
    if vocab_size < smallest:
        why = {
            "word": " (<unk> and at least one word)",
            "bpe": f": bpe starts from an alphabet of the {BYTES} bytes, so that any UTF-8 text encodes",
        }[tokenizer]
        raise ConfigError(
            f"data.vocab_size={vocab_size} is too small for data.tokenizer={tokenizer}{why}: "
            f"give at least {smallest}"
        )


def untrained(kind: str, vocab_size: int) -> tuple[Tokenizer, trainers.Trainer]:
    """An empty ``word`` or ``bpe`` tokenizer and the trainer that learns its vocabulary."""
    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        return tokenizer, trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False
        )
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNKNOWN))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()  # the words as they are, one after the other
    return tokenizer, trainers.WordLevelTrainer(
        vocab_size=vocab_size, special_tokens=[UNKNOWN], show_progress=False
    )


def lines_of(pieces: Iterable[str]) -> Iterator[list[str]]:
    """The text of ``pieces`` as batches of whole lines (each with its line break), one batch per piece;
    a line cut by the end of a piece goes into the next batch.

    A line longer than :data:`LONGEST_LINE` characters (a corpus with no line breaks) is cut before its
    last space there, or anywhere if it has none, so that memory stays bounded by the chunk size.
    """
    carry = ""
    for piece in pieces:
        lines = (carry + piece).splitlines(keepends=True)
        carry = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
        if len(carry) > LONGEST_LINE:
            cut = carry.rfind(" ", 1) if " " in carry[1:] else len(carry)
            lines.append(carry[:cut])
            carry = carry[cut:]
        if lines:
            yield lines
    if carry:
        yield [carry]


class TrainedTokenizer:
    """A ``word`` or ``bpe`` tokenizer as tokenizers' JSON (``Tokenizer.to_str()``), which checkpoints and
    token-file sidecars hold: a plain string, readable without the corpus."""

    def __init__(self, json: str, unknown_chars: float) -> None:
        self.json = json
        self.tokenizer = Tokenizer.from_str(json)
        self.kind = "bpe" if isinstance(self.tokenizer.model, models.BPE) else "word"
        self.unit = UNITS[self.kind]
        self.unknown_id = self.tokenizer.token_to_id(UNKNOWN)  # None for bpe
        self.unknown_chars = unknown_chars

    def __len__(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def encode_lines(self, lines: list[str]) -> np.ndarray:
        """The ids of ``lines`` (whole lines, see :func:`lines_of`), one after the other, as int64."""
        encodings = self.tokenizer.encode_batch_fast(lines, add_special_tokens=False)
        return np.fromiter((i for encoding in encodings for i in encoding.ids), dtype=np.int64)

    def encode(self, text: str) -> torch.Tensor:
        return torch.from_numpy(self.encode_lines(text.splitlines(keepends=True)))

    def decode(self, ids: torch.Tensor | Iterable[int]) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    def unencodable(self, text: str) -> str | None:
        """Why ``text`` cannot be encoded faithfully (words the vocabulary lacks), or None."""
        if self.unknown_id is None:
            return None
        split = self.tokenizer.pre_tokenizer.pre_tokenize_str
        pieces = (piece for line in text.splitlines(keepends=True) for piece, _ in split(line))
        vocab = self.tokenizer.get_vocab()
        unknown = list(dict.fromkeys(piece for piece in pieces if piece not in vocab))
        if not unknown:
            return None
        return (
            f"has {len(unknown)} word(s) outside the model's vocabulary of {len(self)} words "
            f"({', '.join(map(repr, unknown[:5]))}), which it would read as {UNKNOWN}"
        )

    def char_lengths(self) -> torch.Tensor:
        """Each id's length in characters (float64; see the module's docstring)."""
        vocab = self.tokenizer.get_vocab()
        lengths = np.zeros(len(self), dtype=np.float64)
        if self.kind == "bpe":
            unbyte = byte_values()
            for piece, index in vocab.items():
                # UTF-8 continuation bytes are 10xxxxxx: every other byte starts a character.
                lengths[index] = sum(unbyte[c] & 0xC0 != 0x80 for c in piece)
        else:
            for word, index in vocab.items():
                lengths[index] = len(word)
            lengths[self.unknown_id] = self.unknown_chars
        return torch.from_numpy(lengths)


@cache
def byte_values() -> dict[str, int]:
    """The byte each character of a byte-level BPE piece stands for (GPT-2's printable stand-ins: bytes
    that print as themselves keep their character, the rest get 256 upwards)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    others = [b for b in range(BYTES) if b not in printable]
    return {chr(b): b for b in printable} | {chr(BYTES + n): b for n, b in enumerate(others)}


def described(spec: "DataSpec") -> str:
    """What a model of text reads, for messages: ``65 characters``, ``a bpe vocabulary of 512 tokens``."""
    tokenizer = text_tokenizer(spec)
    if isinstance(tokenizer, Vocab):
        return f"{len(tokenizer)} characters"
    return f"a {tokenizer.kind} vocabulary of {len(tokenizer)} {tokenizer.unit}"


def text_tokenizer(spec: "DataSpec") -> Vocab | TrainedTokenizer:
    """The tokenizer a model of text was trained with, from its DataSpec (a checkpoint holds it)."""
    if spec.tokenizer is None:
        return Vocab(spec.vocab)
    return TrainedTokenizer(spec.tokenizer, spec.unknown_chars)
