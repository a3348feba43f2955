"""A text corpus prepared once into a compact token file, then memory-mapped by every run and process.

    <data_dir>/tokens/<source name>-<hash of its path>.bin    the ids, uint8 / uint16 / uint32
    <data_dir>/tokens/<source name>-<hash of its path>.json   the sidecar: source size, mtime and sha256,
                                                              the vocabulary, the dtype, the format

Preparing reads the source twice in chunks (the vocabulary first, so the ids get the smallest dtype;
then the ids), so no step holds the corpus as one string or as int64. Each chunk is vectorised through
its code points: a lookup table over all of Unicode maps them to ids. The token file is written before
the sidecar, each atomically, so an interrupted preparation leaves no sidecar that matches.

A later run trusts the files while the source has the recorded size and mtime and the token file has
the recorded length; otherwise it prepares them again. Mapping the file (copy-on-write, never written)
costs no memory up front: pages are read as windows are served and shared through the page cache by
every process on the machine, DDP ranks included.
"""

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from seqexp.data.files import existing_file, text_chunks, write_atomically
from seqexp.data.vocab import Vocab, code_points
from seqexp.errors import ConfigError

log = logging.getLogger(__name__)

# Bump whenever the token file or its sidecar change meaning, so that files written by older code are rebuilt.
FORMAT_VERSION = 1
CHUNK_BYTES = 4 << 20
UNICODE_SIZE = 0x110000


@dataclass(frozen=True)
class TokenFile:
    vocab: Vocab
    tokens: np.ndarray  # 1-D, memory-mapped from the token file
    source_sha256: str  # of the source as it was prepared


def token_paths(source: Path, data_dir: Path) -> tuple[Path, Path]:
    """Where the tokens of ``source`` live: one pair of files per source path."""
    name = f"{source.stem}-{hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]}"
    folder = data_dir / "tokens"
    return folder / f"{name}.bin", folder / f"{name}.json"


def smallest_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint32)


def prepared_tokens(
    source: Path, data_dir: Path, key: str = "data.path", chunk_bytes: int = CHUNK_BYTES
) -> TokenFile:
    """The tokens of the UTF-8 text file ``source``, prepared under ``data_dir`` unless already there.

    ``key`` names the setting that gave ``source`` in error messages (missing, empty, not UTF-8).
    """
    source = existing_file(source, key, "the path of a UTF-8 text file")
    stat = source.stat()
    if stat.st_size == 0:
        raise ConfigError(f"{key}={str(source)!r} is empty: give a UTF-8 text file with some text in it")
    token_path, sidecar_path = token_paths(source, data_dir)
    if (prepared := _reuse(token_path, sidecar_path, stat)) is not None:
        return prepared
    _prepare(source, token_path, sidecar_path, key, chunk_bytes)
    prepared = _reuse(token_path, sidecar_path, source.stat())
    if prepared is None:
        raise ConfigError(f"{key}={str(source)!r} changed while it was being prepared: run again")
    return prepared


def _reuse(token_path: Path, sidecar_path: Path, source_stat: os.stat_result) -> TokenFile | None:
    """The token file mapped, if its sidecar matches the source and its length matches the sidecar."""
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        current = (sidecar["format"], sidecar["source_size"], sidecar["source_mtime_ns"])
        if current != (FORMAT_VERSION, source_stat.st_size, source_stat.st_mtime_ns):
            return None
        dtype, count = np.dtype(sidecar["dtype"]), int(sidecar["tokens"])
        if token_path.stat().st_size != count * dtype.itemsize:  # truncated, or another file
            return None
        vocab, sha256 = Vocab(sidecar["vocab"]), sidecar["source_sha256"]
    except (OSError, ValueError, KeyError, TypeError):  # missing or unreadable: prepare again
        return None
    # Copy-on-write rather than read-only: torch.from_numpy takes it without a warning, and nothing
    # writes to it, so every page stays shared with the file.
    return TokenFile(vocab, np.memmap(token_path, dtype=dtype, mode="c", shape=(count,)), sha256)


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
    sidecar = {
        "format": FORMAT_VERSION,
        "source": str(source.resolve()),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "source_sha256": digest.hexdigest(),
        "dtype": dtype.name,
        "tokens": count,
        "vocab": [chr(code) for code in codes.tolist()],
    }
    write_atomically(sidecar_path, lambda file: file.write(json.dumps(sidecar, indent=1).encode("utf-8")))
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
