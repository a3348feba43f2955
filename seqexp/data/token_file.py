"""A text corpus prepared once into a compact token file, then memory-mapped by every run and process.

    <data_dir>/tokens/<source name>-<hash>.bin    the ids, uint8 / uint16 / uint32
    <data_dir>/tokens/<source name>-<hash>.json   the sidecar: source size, mtime and sha256, the dtype,
                                                  the format, and the vocabulary or tokenizer

The hash is of the source's path and, for a trained tokenizer (data.tokenizer=word or bpe), of its
settings, so that a corpus's character file and its bpe files of each size live side by side.

Characters: preparing reads the source twice in chunks (the vocabulary first, so the ids get the
smallest dtype; then the ids), so no step holds the corpus as one string or as int64. Each chunk is
vectorised through its code points: a lookup table over all of Unicode maps them to ids. The splits are
cut from the ids when they are loaded (seqexp/data/text.py), at the same characters as the text's.

A trained tokenizer learns its vocabulary from the training split alone, so the split is made on the
text first: one pass counts the characters and cuts the text where the character splits cut it, a second
trains the tokenizer on the training stretch, a third encodes each split on its own (no token spans two
splits) and records how many tokens each has. The tokenizer's JSON goes into the sidecar.

The token file is written before the sidecar, each atomically, so an interrupted preparation leaves no
sidecar that matches.

A later run trusts the files while the source has the recorded size and mtime and the token file has
the recorded length; otherwise it prepares them again. Mapping the file (copy-on-write, never written)
costs no memory up front: pages are read as windows are served and shared through the page cache by
every process on the machine, DDP ranks included.
"""

import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from seqexp.data.files import existing_file, one_at_a_time, text_chunks, write_atomically
from seqexp.data.tokenizer import UNKNOWN, TrainedTokenizer, lines_of, untrained
from seqexp.data.vocab import Vocab, code_points
from seqexp.errors import ConfigError

log = logging.getLogger(__name__)

# Bump whenever the token file or its sidecar change meaning, so that files written by older code are rebuilt.
FORMAT_VERSION = 1
CHUNK_BYTES = 4 << 20
UNICODE_SIZE = 0x110000


@dataclass(frozen=True)
class Tokenization:
    """What a trained tokenizer (``word`` or ``bpe``) and its token file depend on besides the text: the
    held-out fractions say which text it learns from."""

    kind: str
    vocab_size: int
    val_fraction: float
    test_fraction: float


@dataclass(frozen=True)
class TokenFile:
    tokenizer: Vocab | TrainedTokenizer
    tokens: np.ndarray  # 1-D, memory-mapped from the token file
    source_sha256: str  # of the source as it was prepared
    # A trained tokenizer's tokens per split, in text order (train, val[, test]); None for characters,
    # whose splits are cut from the fractions as the file is loaded.
    split_sizes: dict[str, int] | None = None


def split_lengths(length: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """How many of ``length`` items go to ``train | val | test``, in text order; ``test`` only when
    ``test_fraction`` > 0."""
    n_val, n_test = int(length * val_fraction), int(length * test_fraction)
    lengths = {"train": length - n_val - n_test, "val": n_val}
    return lengths | {"test": n_test} if test_fraction > 0 else lengths


def token_paths(source: Path, data_dir: Path, tokenization: Tokenization | None = None) -> tuple[Path, Path]:
    """Where the tokens of ``source`` live: one pair of files per source path and tokenization."""
    key = str(source.resolve())
    if tokenization is not None:
        key += json.dumps(asdict(tokenization), sort_keys=True)
    name = f"{source.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    folder = data_dir / "tokens"
    return folder / f"{name}.bin", folder / f"{name}.json"


def smallest_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint32)


def prepared_tokens(
    source: Path,
    data_dir: Path,
    tokenization: Tokenization | None = None,
    key: str = "data.path",
    chunk_bytes: int = CHUNK_BYTES,
) -> TokenFile:
    """The tokens of the UTF-8 text file ``source``, prepared under ``data_dir`` unless already there:
    its characters, or the tokens of a tokenizer trained as ``tokenization`` says.

    ``key`` names the setting that gave ``source`` in error messages (missing, empty, not UTF-8).
    """
    source = existing_file(source, key, "the path of a UTF-8 text file")
    stat = source.stat()
    if stat.st_size == 0:
        raise ConfigError(f"{key}={str(source)!r} is empty: give a UTF-8 text file with some text in it")
    token_path, sidecar_path = token_paths(source, data_dir, tokenization)
    with one_at_a_time(token_path.parent):
        if (prepared := _reuse(token_path, sidecar_path, stat, tokenization)) is not None:
            return prepared
        if tokenization is None:
            _prepare(source, token_path, sidecar_path, key, chunk_bytes)
        else:
            _prepare_trained(source, token_path, sidecar_path, key, chunk_bytes, tokenization)
        prepared = _reuse(token_path, sidecar_path, source.stat(), tokenization)
    if prepared is None:
        raise ConfigError(f"{key}={str(source)!r} changed while it was being prepared: run again")
    return prepared


def _reuse(
    token_path: Path, sidecar_path: Path, source_stat: os.stat_result, tokenization: Tokenization | None
) -> TokenFile | None:
    """The token file mapped, if its sidecar matches the source and the tokenization and its length
    matches the sidecar."""
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        current = (sidecar["format"], sidecar["source_size"], sidecar["source_mtime_ns"])
        if current != (FORMAT_VERSION, source_stat.st_size, source_stat.st_mtime_ns):
            return None
        if sidecar.get("tokenization") != (None if tokenization is None else asdict(tokenization)):
            return None
        dtype, count = np.dtype(sidecar["dtype"]), int(sidecar["tokens"])
        if token_path.stat().st_size != count * dtype.itemsize:  # truncated, or another file
            return None
        if tokenization is None:
            tokenizer: Vocab | TrainedTokenizer = Vocab(sidecar["vocab"])
            split_sizes = None
        else:
            tokenizer = TrainedTokenizer(sidecar["tokenizer"], float(sidecar["unknown_chars"]))
            split_sizes = {split: int(size) for split, size in sidecar["splits"].items()}
        sha256 = sidecar["source_sha256"]
    except Exception:  # missing, unreadable or from other code (tokenizers raises its own): prepare again
        return None
    # Copy-on-write rather than read-only: torch.from_numpy takes it without a warning, and nothing
    # writes to it, so every page stays shared with the file.
    tokens = np.memmap(token_path, dtype=dtype, mode="c", shape=(count,))
    return TokenFile(tokenizer, tokens, sha256, split_sizes)


def _prepare(source: Path, token_path: Path, sidecar_path: Path, key: str, chunk_bytes: int) -> None:
    log.info("preparing the tokens of %s in %s", source, token_path.parent)
    start = time.perf_counter()
    stat = source.stat()  # before reading: an edit during preparation then shows as a changed mtime
    seen = np.zeros(UNICODE_SIZE, dtype=bool)
    digest = hashlib.sha256()
    for raw, text in text_chunks(source, key, chunk_bytes):
        digest.update(raw)
        seen[code_points(text)] = True
    codes = np.flatnonzero(seen)
    dtype = smallest_dtype(len(codes))
    ids_of_codes = np.zeros(UNICODE_SIZE, dtype=dtype)
    ids_of_codes[codes] = np.arange(len(codes))
    count = 0

    def write_ids(file: BinaryIO) -> None:
        nonlocal count
        for _, text in text_chunks(source, key, chunk_bytes):
            ids = ids_of_codes[code_points(text)]
            file.write(memoryview(ids))
            count += len(ids)

    write_atomically(token_path, write_ids)
    _write_sidecar(
        sidecar_path,
        source,
        stat,
        digest.hexdigest(),
        dtype,
        count,
        vocab=[chr(code) for code in codes.tolist()],
    )
    seconds = time.perf_counter() - start
    log.info(
        "prepared %d characters (%d distinct, %s) from %.1f MB in %.1f s (%.0f MB/s)",
        count,
        len(codes),
        dtype.name,
        stat.st_size / 1e6,
        seconds,
        stat.st_size / 1e6 / seconds,
    )


def _write_sidecar(
    path: Path, source: Path, stat: os.stat_result, sha256: str, dtype: np.dtype, count: int, **fields: object
) -> None:
    """The sidecar of a token file: what identifies its source and reads its tokens, then the fields of
    its tokenizer."""
    sidecar = {
        "format": FORMAT_VERSION,
        "source": str(source.resolve()),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "source_sha256": sha256,
        "dtype": dtype.name,
        "tokens": count,
        **fields,
    }
    write_atomically(path, lambda file: file.write(json.dumps(sidecar, indent=1).encode("utf-8")))


def _split_pieces(
    source: Path, key: str, chunk_bytes: int, lengths: dict[str, int]
) -> Iterator[tuple[str, str]]:
    """The text of ``source`` as ``(split, piece)`` in order, cut where the splits' ``lengths`` (in
    characters) end."""
    bounds = list(itertools.accumulate(lengths.values()))
    names, split, offset = list(lengths), 0, 0
    for _, text in text_chunks(source, key, chunk_bytes):
        while text:
            while offset >= bounds[split]:  # a split may be empty (a tiny text's validation part)
                split += 1
            piece = text[: bounds[split] - offset]
            yield names[split], piece
            text, offset = text[len(piece) :], offset + len(piece)


def _prepare_trained(
    source: Path, token_path: Path, sidecar_path: Path, key: str, chunk_bytes: int, tokenization: Tokenization
) -> None:
    kind, vocab_size = tokenization.kind, tokenization.vocab_size
    start = time.perf_counter()
    stat = source.stat()  # before reading: an edit during preparation then shows as a changed mtime
    digest, characters = hashlib.sha256(), 0
    for raw, text in text_chunks(source, key, chunk_bytes):
        digest.update(raw)
        characters += len(text)
    lengths = split_lengths(characters, tokenization.val_fraction, tokenization.test_fraction)
    log.info(
        "training a %s tokenizer of %d tokens on the first %d characters of %s (the training split)",
        kind, vocab_size, lengths["train"], source,
    )  # fmt: skip

    def split_texts() -> Iterator[tuple[str, Iterator[str]]]:
        pieces = _split_pieces(source, key, chunk_bytes, lengths)
        grouped = itertools.groupby(pieces, key=lambda item: item[0])
        return ((split, (piece for _, piece in pieces)) for split, pieces in grouped)

    untrained_tokenizer, trainer = untrained(kind, vocab_size)
    train_text = next(pieces for split, pieces in split_texts() if split == "train")
    untrained_tokenizer.train_from_iterator(lines_of(train_text), trainer)  # batches of lines
    tokenizer = TrainedTokenizer(untrained_tokenizer.to_str(), unknown_chars=0.0)
    if kind == "bpe" and len(tokenizer) < vocab_size:
        raise ConfigError(
            f"data.vocab_size={vocab_size} is too large for the training split of {str(source)!r} "
            f"({lengths['train']:,} characters): bpe finds only {len(tokenizer)} tokens in it; give "
            f"data.vocab_size={len(tokenizer)} or less, or a longer corpus"
        )
    dtype = smallest_dtype(len(tokenizer))
    lengths_of_known = tokenizer.char_lengths().numpy()  # <unk> counts 0 here: its words are measured
    split_sizes: dict[str, int] = dict.fromkeys(lengths, 0)
    unknown, unknown_chars = 0, 0.0

    def write_ids(file: BinaryIO) -> None:
        nonlocal unknown, unknown_chars
        for split, pieces in split_texts():
            known_chars = 0.0
            for lines in lines_of(pieces):
                ids = tokenizer.encode_lines(lines)
                file.write(ids.astype(dtype).tobytes())
                split_sizes[split] += len(ids)
                known_chars += float(lengths_of_known[ids].sum())
                if tokenizer.unknown_id is not None:
                    unknown += int(np.count_nonzero(ids == tokenizer.unknown_id))
            unknown_chars += lengths[split] - known_chars

    write_atomically(token_path, write_ids)
    count = sum(split_sizes.values())
    _write_sidecar(
        sidecar_path, source, stat, digest.hexdigest(), dtype, count,
        tokenization=asdict(tokenization), splits=split_sizes, unknown=unknown,
        unknown_chars=unknown_chars / unknown if unknown else 0.0, tokenizer=tokenizer.json,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    log.info(
        "prepared %d %s (a vocabulary of %d, %s; %.2f characters each) from %.1f MB in %.1f s (%.1f MB/s)",
        count, tokenizer.unit, len(tokenizer), dtype.name, characters / max(count, 1), stat.st_size / 1e6,
        seconds, stat.st_size / 1e6 / seconds,
    )  # fmt: skip
    if tokenizer.unknown_id is not None:
        log.info(
            "%d of the %d words (%.2f %%) are outside the vocabulary of %d and read as %s",
            unknown, count, 100 * unknown / max(count, 1), len(tokenizer), UNKNOWN,
        )  # fmt: skip
