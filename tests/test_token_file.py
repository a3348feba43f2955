"""Token files: prepared in chunks, memory-mapped, identical to the in-memory encoding, rebuilt when stale.

The reference is the plain in-memory path: decode the whole file, read "\\r\\n" as "\\n", take the sorted
set of its characters as the vocabulary and each character's position in it as its id.
"""

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from seqexp.data import token_file
from seqexp.data.files import text_chunks
from seqexp.data.streams import WindowStream
from seqexp.data.text import TextDataModule, contiguous_splits
from seqexp.data.token_file import prepared_tokens, smallest_dtype, token_paths
from seqexp.errors import ConfigError
from tests.helpers import SMALL_CORPUS_TRAINING


def reference(raw: bytes) -> tuple[tuple[str, ...], torch.Tensor]:
    """The vocabulary and int64 ids of ``raw`` as the whole text in memory gives them."""
    text = raw.decode("utf-8").replace("\r\n", "\n")
    vocab = tuple(sorted(set(text)))
    index = {char: i for i, char in enumerate(vocab)}
    return vocab, torch.tensor([index[char] for char in text], dtype=torch.long)


def mixed_corpus(n_words: int, alphabets: list[str], seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ["".join(rng.choices(rng.choice(alphabets), k=rng.randint(1, 6))) for _ in range(300)]
    separators = [" "] * 8 + [", ", ".\n", ".\r\n", "\n\n"]
    return "".join(rng.choice(words) + rng.choice(separators) for _ in range(n_words))


LATIN = "abcdefghijklmnopqrstuvwxyz"
ACCENTED = "àáâãäåæçèéêëìíîïñòóôõöùúûüýÿœš"
GREEK = "".join(map(chr, range(0x3B1, 0x3CA)))
CJK = "".join(map(chr, range(0x4E00, 0x4E00 + 400)))  # with the rest: a vocabulary above 255
EMOJI = "".join(map(chr, range(0x1F600, 0x1F640)))  # 4-byte UTF-8
# A vocabulary above 65,536 characters: every CJK ideograph of the BMP and of extension B, and Hangul.
HUGE = "".join(map(chr, [*range(0x4E00, 0xA000), *range(0xAC00, 0xD7A4), *range(0x20000, 0x2A6E0)]))

CORPORA = {
    "ascii": mixed_corpus(3000, [LATIN, LATIN.upper()]),
    "accents-greek": mixed_corpus(3000, [LATIN, ACCENTED, GREEK]),
    "cjk-emoji-uint16": mixed_corpus(3000, [LATIN, GREEK, CJK, EMOJI]),
    "huge-vocab-uint32": HUGE + mixed_corpus(500, [LATIN, EMOJI]),
}


@pytest.mark.parametrize("name", CORPORA)
@pytest.mark.parametrize("chunk_bytes", [5, 4093, token_file.CHUNK_BYTES])
def test_tokens_and_vocabulary_equal_the_in_memory_encoding(tmp_path, name, chunk_bytes):
    raw = CORPORA[name].encode("utf-8")
    source = tmp_path / "corpus.txt"
    source.write_bytes(raw)
    vocab, ids = reference(raw)
    prepared = prepared_tokens(source, tmp_path / "data", chunk_bytes=chunk_bytes)
    assert prepared.tokenizer.chars == vocab
    assert prepared.tokens.dtype == smallest_dtype(len(vocab))
    assert torch.equal(torch.from_numpy(np.asarray(prepared.tokens)).long(), ids)


def test_the_dtype_is_the_smallest_that_holds_the_vocabulary():
    assert [smallest_dtype(n).name for n in (1, 256, 257, 65536, 65537)] == [
        "uint8",
        "uint8",
        "uint16",
        "uint16",
        "uint32",
    ]
    sizes = {name: len(set(text.replace("\r\n", "\n"))) for name, text in CORPORA.items()}
    assert sizes["ascii"] <= 256 < sizes["cjk-emoji-uint16"] <= 65536 < sizes["huge-vocab-uint32"]


@pytest.mark.parametrize("name", ["accents-greek", "cjk-emoji-uint16"])
@pytest.mark.parametrize(("world_size", "batch_size"), [(1, 4), (2, 3)])
def test_windows_equal_the_in_memory_windows_on_every_rank(tmp_path, name, world_size, batch_size):
    source = tmp_path / "corpus.txt"
    source.write_text(CORPORA[name], encoding="utf-8", newline="")
    _, ids = reference(source.read_bytes())
    data = TextDataModule(
        data_dir=str(tmp_path / "data"), path=str(source), tokenizer="char", vocab_size=1024,
        val_fraction=0.1, test_fraction=0.05,
        batch_size=batch_size, seq_length=16, eval_burn_in=None,
    )  # fmt: skip
    data.setup()
    expected_splits = contiguous_splits(ids, 0.1, 0.05)
    assert data.splits.keys() == expected_splits.keys()
    for split, series in expected_splits.items():
        for rank in range(world_size):
            ours = data._window_stream(split, world_size, rank)
            theirs = WindowStream(series, batch_size, 16, world_size, rank)
            assert len(ours) == len(theirs) > 0
            for k in range(len(theirs)):
                (x, y), (x_ref, y_ref) = ours[k], theirs[k]
                assert x.dtype == y.dtype == torch.long  # served as int64, stored compact
                assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


def mapped_regions(path) -> list[tuple[int, int]]:
    """The address ranges where this process maps ``path`` (from /proc/self/maps)."""
    regions = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(f" {path}"):
            start, end = line.split()[0].split("-")
            regions.append((int(start, 16), int(end, 16)))
    return regions


def test_the_splits_are_views_of_the_mapped_token_file(tmp_path):
    source = tmp_path / "corpus.txt"
    source.write_text(CORPORA["cjk-emoji-uint16"], encoding="utf-8")
    data = TextDataModule(
        data_dir=str(tmp_path / "data"), path=str(source), tokenizer="char", vocab_size=1024,
        val_fraction=0.1, test_fraction=0.0, batch_size=2, seq_length=8, eval_burn_in=None,
    )  # fmt: skip
    data.setup()
    token_path, _ = token_paths(source, tmp_path / "data")
    for split in ("train", "val"):
        series = data.splits[split]
        assert series.dtype == torch.uint16  # compact, as in the file
        address = series.data_ptr()
        assert any(lo <= address < hi for lo, hi in mapped_regions(token_path.resolve())), split


def write_prepared(tmp_path, text: str):
    source = tmp_path / "corpus.txt"
    source.write_text(text, encoding="utf-8")
    prepared_tokens(source, tmp_path / "data")
    return source, *token_paths(source, tmp_path / "data")


def test_a_fresh_token_file_is_reused_without_reading_the_source(tmp_path, monkeypatch):
    source, token_path, sidecar_path = write_prepared(tmp_path, CORPORA["accents-greek"])
    stamps = token_path.stat().st_mtime_ns, sidecar_path.stat().st_mtime_ns

    def must_not_read(*args, **kwargs):
        raise AssertionError("a fresh token file was prepared again")

    monkeypatch.setattr(token_file, "text_chunks", must_not_read)
    prepared = prepared_tokens(source, tmp_path / "data")
    assert prepared.tokenizer.chars == reference(source.read_bytes())[0]
    assert (token_path.stat().st_mtime_ns, sidecar_path.stat().st_mtime_ns) == stamps
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    assert sidecar["source_size"] == source.stat().st_size
    assert sidecar["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert sorted(p.name for p in token_path.parent.iterdir()) == sorted([token_path.name, sidecar_path.name])


@pytest.mark.parametrize("staleness", ["source-changed", "truncated", "no-sidecar", "old-format"])
def test_a_stale_token_file_is_prepared_again(tmp_path, staleness):
    source, token_path, sidecar_path = write_prepared(tmp_path, "abc abc\n" * 100)
    expected_text = "abc abc\n" * 100
    if staleness == "source-changed":
        expected_text = "xyz! " * 200
        source.write_text(expected_text, encoding="utf-8")
        stat = source.stat()  # a clock too coarse to tell the two writes apart still sees a new mtime
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    elif staleness == "truncated":
        token_path.write_bytes(token_path.read_bytes()[:-3])
    elif staleness == "no-sidecar":
        sidecar_path.unlink()
    elif staleness == "old-format":
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        sidecar_path.write_text(json.dumps({**sidecar, "format": 0}), encoding="utf-8")

    prepared = prepared_tokens(source, tmp_path / "data")
    vocab, ids = reference(expected_text.encode())
    assert prepared.tokenizer.chars == vocab
    assert torch.equal(torch.from_numpy(np.asarray(prepared.tokens)).long(), ids)
    assert token_path.stat().st_size == len(ids)  # uint8
    assert json.loads(sidecar_path.read_text(encoding="utf-8"))["format"] == token_file.FORMAT_VERSION


@pytest.mark.parametrize("chunk_bytes", range(1, 9))
def test_crlf_is_read_as_lf_even_across_chunk_boundaries(tmp_path, chunk_bytes):
    raw = "ab\r\ncd\r\n\r\né\r\n€\r\n𝄞\rx\n".encode()  # a lone "\r" stays
    source = tmp_path / "crlf.txt"
    source.write_bytes(raw)
    pieces = list(text_chunks(source, chunk_bytes=chunk_bytes))
    assert b"".join(raw_piece for raw_piece, _ in pieces) == raw
    assert "".join(text for _, text in pieces) == "ab\ncd\n\né\n€\n𝄞\rx\n"
    prepared = prepared_tokens(source, tmp_path / "data", chunk_bytes=chunk_bytes)
    assert "".join(prepared.tokenizer.chars[i] for i in prepared.tokens) == "ab\ncd\n\né\n€\n𝄞\rx\n"


@pytest.mark.parametrize("chunk_bytes", [3, 16, token_file.CHUNK_BYTES])
@pytest.mark.parametrize(
    ("raw", "line", "offset", "byte"),
    [
        ("naïve\nçà\nok ".encode() + b"caf\xe9 au lait\n", 3, 18, 0xE9),  # Latin-1 in a UTF-8 file
        ("one\ntwo\r\nthree €".encode()[:-1], 3, 15, 0xE2),  # a character cut short at the end
        (b"\xff", 1, 0, 0xFF),
    ],
    ids=["latin1-byte", "cut-at-end", "first-byte"],
)
def test_not_utf8_names_line_and_offset_and_leaves_nothing(tmp_path, chunk_bytes, raw, line, offset, byte):
    source = tmp_path / "bad.txt"
    source.write_bytes(raw)
    with pytest.raises(ConfigError) as error:
        prepared_tokens(source, tmp_path / "data", chunk_bytes=chunk_bytes)
    assert f"data.path={str(source)!r} is not UTF-8 text" in str(error.value)
    assert f"byte 0x{byte:02x} on line {line}, at byte offset {offset}, is invalid" in str(error.value)
    assert not (tmp_path / "data").exists() or not any(p.is_file() for p in (tmp_path / "data").rglob("*"))


def test_an_interrupted_preparation_leaves_no_file(tmp_path, monkeypatch):
    source = tmp_path / "corpus.txt"
    source.write_text(CORPORA["ascii"], encoding="utf-8")
    real_chunks = token_file.text_chunks
    passes = []

    def interrupted_in_the_second_pass(*args, **kwargs):
        passes.append(1)
        for n, piece in enumerate(real_chunks(*args, **kwargs)):
            if len(passes) == 2 and n == 2:
                raise KeyboardInterrupt
            yield piece

    monkeypatch.setattr(token_file, "text_chunks", interrupted_in_the_second_pass)
    with pytest.raises(KeyboardInterrupt):
        prepared_tokens(source, tmp_path / "data", chunk_bytes=1000)
    assert len(passes) == 2
    assert not any(p.is_file() for p in (tmp_path / "data").rglob("*"))


@pytest.mark.slow
def test_ddp_ranks_serve_their_rows_from_one_shared_token_file(tmp_path, run_script):
    source = tmp_path / "corpus.txt"
    source.write_text(CORPORA["cjk-emoji-uint16"], encoding="utf-8")
    _, ids = reference(source.read_bytes())
    data_dir, out = tmp_path / "data", tmp_path / "run"
    result = run_script(
        "train.py", "data=text", f"data.path={source}", *SMALL_CORPUS_TRAINING, f"paths.data_dir={data_dir}",
        "trainer=ddp_cpu",
        "trainer.devices=2", "data.batch_size=2", "seq_length=16", "model.hidden_size=8",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "callbacks.text_sample.prime=a",
        "+callbacks.batches._target_=tests.spies.BatchRecorder", f"+callbacks.batches.out_dir={out}/batches",
        "+callbacks.mapping._target_=tests.spies.TokenMappingRecorder",
        f"+callbacks.mapping.out_dir={out}/maps",
        f"hydra.run.dir={out}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    token_path, sidecar_path = token_paths(source, data_dir)
    assert sorted(data_dir.rglob("*.*")) == sorted([token_path, sidecar_path])  # prepared once
    train = contiguous_splits(ids, 0.1, 0.0)["train"]
    for rank in (0, 1):
        # The rank's rows are a compact view of the token file itself, the same file (inode) on both.
        mapping = json.loads((out / "maps" / f"rank{rank}.json").read_text())
        assert mapping == {
            "dtype": "torch.uint16",
            "mapped": {"path": str(token_path.resolve()), "inode": token_path.stat().st_ino},
        }
        # Contract 1 holds: each rank saw its own contiguous rows, exactly as the in-memory ids give them.
        batches = torch.load(out / "batches" / f"rank{rank}.pt")
        stream = WindowStream(train, batch_size=2, seq_length=16, world_size=2, rank=rank)
        assert len(batches) == len(stream) > 0
        assert all(torch.equal(batch, stream[k][0]) for k, batch in enumerate(batches))


def test_a_killed_preparation_leaves_no_temporary_file_behind_the_next_one(tmp_path):
    # A real process prepares a corpus large enough to be killed (SIGKILL: no cleanup of its own) in
    # the middle of writing its token file; the next preparation removes what it left.
    import signal
    import subprocess
    import time

    from tests import warm_start
    from tests.helpers import REPO

    source = tmp_path / "big.txt"
    source.write_text("the quick brown fox jumps over the lazy dog.\n" * 1_500_000, encoding="utf-8")
    data_dir = tmp_path / "data"
    prepare = "import sys; from pathlib import Path; from seqexp.data.token_file import prepared_tokens\n"
    prepare += "prepared_tokens(Path(sys.argv[1]), Path(sys.argv[2]))\n"

    def temporaries() -> list[Path]:
        folder = data_dir / "tokens"
        return list(folder.glob(".*.part")) if folder.is_dir() else []

    process = warm_start.popen(["-c", prepare, source, data_dir], cwd=REPO, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not temporaries():
        assert process.poll() is None, "the preparation ended before it was killed: use a larger corpus"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert temporaries(), "the kill left nothing to clean up"

    prepared = prepared_tokens(source, data_dir)
    assert len(prepared.tokens) == 45 * 1_500_000
    assert sorted(p.name for p in (data_dir / "tokens").iterdir()) == sorted(
        p.name for p in token_paths(source, data_dir)
    )


def test_a_full_disk_during_preparation_is_one_error_and_leaves_nothing_behind(tmp_path, small_disk):
    source = tmp_path / "big.txt"
    source.write_text("the quick brown fox jumps over the lazy dog.\n" * 100_000, encoding="utf-8")  # 4.5 MB
    with pytest.raises(ConfigError, match=f"cannot write .* on {small_disk}: No space left on device"):
        prepared_tokens(source, small_disk)
    assert not (small_disk / "tokens").exists()  # not even the folder made for it


PREPARE = """
import sys
from pathlib import Path
from seqexp.data.shakespeare import cached_plays_file
from seqexp.data.token_file import prepared_tokens
folder = Path(sys.argv[1])
print(len(prepared_tokens(cached_plays_file(folder / "shakespeare", headings=False), folder).tokens))
"""


@pytest.mark.slow
def test_processes_that_start_together_prepare_the_plays_and_their_tokens_once(tmp_path):
    # As the nodes of a run on several machines do, sharing one data folder: without a lock each rewrote
    # the plays under the other, which then found its source "changed while it was being prepared".
    from tests import warm_start

    results = warm_start.run_together([["-c", PREPARE, tmp_path]] * 2, cwd=tmp_path)
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
    counts = {int(r.stdout) for r in results}
    assert len(counts) == 1 and counts.pop() > 4_000_000
    assert len(list((tmp_path / "tokens").glob("*.json"))) == 1
