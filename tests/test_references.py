"""Every reference to a file of this repository resolves: the file exists, and a cited section of
docs/design.md is one of its headings. Renaming or deleting a file, or renumbering the design doc,
fails here until the citations follow."""

import re
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.helpers import REPO

TEXT_SUFFIXES = (".py", ".yaml", ".md", ".toml")
ROOTS = ("conf", "docs", "scripts", "seqexp", "tests")
# A repository path: one of the top-level folders, then names; a file (with a suffix) or a folder (/).
PATH = re.compile(
    r"(?<![\w./-])((?:" + "|".join(ROOTS) + r")/[\w./<>*{}\[\]-]*?(?:\.(?:py|yaml|md|toml)\b|/(?![\w<{*])))"
)
# A section citation: a path ending in design.md, then one or more section numbers (§3, §3/§4, §3, §4).
CITATION = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*design\.md)\s*(§\d+(?:\s*(?:/|,|and|or)\s*§?\d+)*)")
DESIGN = "docs/design.md"
HEADING = re.compile(r"^## §(\d+)\b", re.MULTILINE)


def is_pattern(path: str) -> bool:
    """A placeholder (``conf/model/<name>.yaml``), a glob or an f-string, not a real path."""
    return any(mark in path for mark in "<>*{}[]")


def dangling_references(
    text: str, exists: Callable[[str], bool], sections: set[int], inside_design: bool = False
) -> list[str]:
    """The references in ``text`` that do not resolve, as written; ``exists`` says whether a repository
    path exists, ``sections`` are the section numbers of docs/design.md."""
    dangling = []
    for match in PATH.finditer(text):
        path = match.group(1)
        if not is_pattern(path) and not exists(path):
            dangling.append(path)
    for match in CITATION.finditer(text):
        path, cited = match.groups()
        if path != DESIGN:
            dangling.append(f"{path} (the design doc is {DESIGN})")
        dangling += [f"{DESIGN} §{n}" for n in map(int, re.findall(r"\d+", cited)) if n not in sections]
    if inside_design:  # the doc's own cross-references, "(§2)"
        cited = {int(n) for n in re.findall(r"§(\d+)", HEADING.sub("", text))}
        dangling += [f"{DESIGN} §{n}" for n in sorted(cited - sections)]
    return dangling


def tracked_text_files() -> Iterable[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
        files = [REPO / name for name in listed]
    except (OSError, subprocess.CalledProcessError):  # an exported tree without git
        files = [p for p in REPO.rglob("*") if not {".git", "outputs", "data"} & set(p.parts)]
    return [f for f in files if f.suffix in TEXT_SUFFIXES and f.is_file()]


def design_sections() -> set[int]:
    return {int(n) for n in HEADING.findall((REPO / DESIGN).read_text(encoding="utf-8"))}


def test_every_reference_to_a_repository_file_resolves():
    sections = design_sections()
    assert sections == set(range(1, 12)), sections  # §1 … §11, numbered without gaps

    def exists(path: str) -> bool:
        return (REPO / path).exists()

    dangling = {}
    for file in tracked_text_files():
        if file == Path(__file__):
            continue  # its examples of dangling references are meant to dangle
        text = file.read_text(encoding="utf-8")
        found = dangling_references(text, exists, sections, inside_design=file == REPO / DESIGN)
        if found:
            dangling[str(file.relative_to(REPO))] = found
    assert not dangling, f"references that do not resolve: {dangling}"


def test_the_scan_finds_what_is_dangling_and_ignores_placeholders():
    present = {"docs/design.md", "scripts/train.py", "conf/model/", "seqexp/module.py"}
    text = """
        See docs/design.md §3 and docs/design.md §3/§12; design.md §4 (no such file at the root).
        Run scripts/train.py, not scripts/bench_missing.py; edit conf/model/ or conf/optim/.
        Ignored: conf/model/<name>.yaml, tests/test_*.py, outputs/runs/x/train.py, f"conf/{group}/",
        pytorch/examples word_language_model/main.py. (seqexp/module.py) resolves.
    """
    found = dangling_references(text, present.__contains__, {1, 2, 3, 4})
    assert found == [
        "scripts/bench_missing.py",
        "conf/optim/",
        "docs/design.md §12",
        "design.md (the design doc is docs/design.md)",
    ]
    assert dangling_references("as §2 and §7 say", present.__contains__, {2}, inside_design=True) == [
        "docs/design.md §7"
    ]
