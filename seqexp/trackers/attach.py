"""What a tracker needs to attach to a run: its package, and the id it gave the run, kept in the run
folder's trackers.json so that a resumed run, a requeued job or a resumed sweep continues the same
tracker run rather than starting another."""

import importlib.util
import json
import os
from pathlib import Path

from seqexp.errors import ConfigError
from seqexp.run_layout import TRACKER_IDS


def require_package(module: str, extra: str) -> None:
    """ConfigError naming the extra to install when ``module`` is missing (before anything is logged)."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"logger={extra} needs the {module} package, which is not installed: "
            f"pip install -e '.[{extra}]' (or choose logger=tensorboard or logger=csv)"
        )


def remembered_id(run_dir: str | Path, tracker: str) -> str | None:
    """The id ``tracker`` gave this run folder's run, or None when it has given none yet."""
    path = Path(run_dir) / TRACKER_IDS
    try:
        ids = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise ConfigError(f"{path} is unreadable ({error}): delete it to start new tracker runs") from None
    found = ids.get(tracker) if isinstance(ids, dict) else None
    return found if isinstance(found, str) else None


def remember_id(run_dir: str | Path, tracker: str, run_id: str) -> None:
    """Keep ``run_id`` beside the other trackers' ids; the file is replaced whole, never left half written."""
    path = Path(run_dir) / TRACKER_IDS
    ids = json.loads(path.read_text()) if path.is_file() else {}
    ids[tracker] = run_id
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(ids, indent=2) + "\n")
    os.replace(partial, path)
