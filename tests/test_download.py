"""data=tinyshakespeare's download path against a file served on 127.0.0.1 by a server of the test's own."""

import functools
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from seqexp.data.files import download_verified
from seqexp.data.tinyshakespeare import TinyShakespeareDataModule
from seqexp.data.token_file import token_paths
from seqexp.data.vocab import Vocab
from seqexp.errors import ConfigError

CONTENT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n" * 40).encode()
SHA = hashlib.sha256(CONTENT).hexdigest()
HINT = "pass the copy with data.path=/path/to/input.txt"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """The base URL of a local server for a folder holding input.txt (CONTENT)."""
    root = tmp_path / "served"
    root.mkdir()
    (root / "input.txt").write_bytes(CONTENT)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=root)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/input.txt"


def test_good_hash_is_kept(served, tmp_path):
    target = tmp_path / "data" / "input.txt"
    download_verified(f"{served}/input.txt", SHA, target, HINT)
    assert target.read_bytes() == CONTENT
    assert [p.name for p in target.parent.iterdir()] == ["input.txt"]


def test_bad_hash_is_refused_and_nothing_is_left(served, tmp_path):
    target = tmp_path / "data" / "input.txt"
    with pytest.raises(ConfigError) as error:
        download_verified(f"{served}/input.txt", "0" * 64, target, HINT)
    assert f"has sha256 {SHA}, expected {'0' * 64}; nothing was kept" in str(error.value)
    assert list(target.parent.iterdir()) == []


def test_bad_hash_keeps_an_older_good_file(served, tmp_path):
    target = tmp_path / "data" / "input.txt"
    target.parent.mkdir()
    target.write_bytes(b"the good old copy")
    with pytest.raises(ConfigError):
        download_verified(f"{served}/input.txt", "0" * 64, target, HINT)
    assert target.read_bytes() == b"the good old copy"
    assert [p.name for p in target.parent.iterdir()] == ["input.txt"]


@pytest.mark.parametrize("where", ["offline", "not-found"])
def test_unreachable_says_how_to_pass_a_local_copy(served, tmp_path, where):
    url = closed_port_url() if where == "offline" else f"{served}/missing.txt"
    target = tmp_path / "data" / "input.txt"
    with pytest.raises(ConfigError) as error:
        download_verified(url, SHA, target, HINT)
    assert f"cannot download data.url={url!r}" in str(error.value)
    assert "data.path=/path/to/input.txt" in str(error.value)
    assert list(target.parent.iterdir()) == []


def tiny(data_dir: Path, url: str, path: str | None = None) -> TinyShakespeareDataModule:
    return TinyShakespeareDataModule(
        data_dir=str(data_dir), url=url, sha256=SHA, path=path, tokenizer="char", vocab_size=1024,
        val_fraction=0.1, test_fraction=0.0, batch_size=2, seq_length=10, eval_burn_in=None,
    )  # fmt: skip


def test_datamodule_downloads_once_then_reads_the_cache(served, tmp_path):
    data = tiny(tmp_path, f"{served}/input.txt")
    assert data.source_file() == tmp_path / "tinyshakespeare" / "input.txt"
    assert data.source_file().read_bytes() == CONTENT
    # Second time round the network is gone: the verified cache is enough, and its tokens are prepared
    # like any corpus's.
    data = tiny(tmp_path, closed_port_url())
    assert (
        Vocab(data.spec.vocab).decode(data.splits["train"]) == CONTENT.decode()[: len(data.splits["train"])]
    )
    assert token_paths(tmp_path / "tinyshakespeare" / "input.txt", tmp_path)[0].is_file()


def test_datamodule_reads_a_local_copy_with_the_right_hash(tmp_path):
    copy = tmp_path / "copy.txt"
    copy.write_bytes(CONTENT)
    assert tiny(tmp_path / "data", closed_port_url(), path=str(copy)).source_file() == copy
    assert not (tmp_path / "data").exists()  # nothing downloaded

    copy.write_bytes(CONTENT + b"an edit\n")
    with pytest.raises(ConfigError, match=r"is not the tinyshakespeare file .* use data=text data.path="):
        tiny(tmp_path / "data", closed_port_url(), path=str(copy)).source_file()
