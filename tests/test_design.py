"""docs/design.md §1 names every module of seqexp/ with its job: a module added, moved or renamed without
the map following fails here, by name."""

import re

from tests.helpers import REPO

DESIGN = REPO / "docs" / "design.md"
ENTRY = re.compile(r"( *)(\S+) *(.*)")


def package_tree(design: str) -> dict[str, str]:
    """``{repository path: job}`` for each module in §1's tree of seqexp/, one line per module, its path
    made of the folders above it by indentation (``app/`` then ``  cli.py`` is ``seqexp/app/cli.py``)."""
    section = design.split("\n## §1 ", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```\n(seqexp/\n.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert block, "docs/design.md §1 has no code block that starts with the line seqexp/"
    modules: dict[str, str] = {}
    folders: list[tuple[int, str]] = []  # (indent, name) of the folders around the current line
    for line in block.group(1).splitlines():
        indent, name, job = ENTRY.match(line).groups()
        while folders and len(folders[-1][0]) >= len(indent):
            folders.pop()
        if not folders and name != "seqexp/":
            break  # past the package: scripts/, conf/, docs/
        path = "".join(folder for _, folder in folders) + name
        if name.endswith("/"):
            folders.append((indent, name))
        else:
            modules[path] = job
    return modules


def package_modules() -> set[str]:
    return {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "seqexp").rglob("*.py")
        if path.name != "__init__.py"
    }


def tree_problems(tree: dict[str, str], modules: set[str]) -> list[str]:
    return [
        *(f"{path} is missing from docs/design.md §1" for path in sorted(modules - set(tree))),
        *(f"docs/design.md §1 names {path}, which does not exist" for path in sorted(set(tree) - modules)),
        *(f"docs/design.md §1 gives {path} no job" for path, job in tree.items() if not job),
    ]


def test_the_design_names_every_module_of_the_package_with_its_job():
    problems = tree_problems(package_tree(DESIGN.read_text(encoding="utf-8")), package_modules())
    assert not problems, "\n".join(problems)


def test_a_module_missing_from_the_tree_is_named():
    design = """
## §1 Architecture

```
seqexp/
  errors.py       the one exception type
  app/            plumbing:
    cli.py        the one error path
    devices.py
  module.py       the LightningModule
scripts/          entry points
```

## §2 Configuration
"""
    tree = package_tree(design)
    assert tree == {
        "seqexp/errors.py": "the one exception type",
        "seqexp/app/cli.py": "the one error path",
        "seqexp/app/devices.py": "",
        "seqexp/module.py": "the LightningModule",
    }
    # As if devices.py had been deleted and resume.py added without the tree following.
    modules = {"seqexp/errors.py", "seqexp/app/cli.py", "seqexp/app/resume.py", "seqexp/module.py"}
    assert tree_problems(tree, modules) == [
        "seqexp/app/resume.py is missing from docs/design.md §1",
        "docs/design.md §1 names seqexp/app/devices.py, which does not exist",
        "docs/design.md §1 gives seqexp/app/devices.py no job",
    ]
