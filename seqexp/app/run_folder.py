"""One folder, one run: a Hydra callback that claims the run's (or the sweep's) folder before Hydra
writes anything into it.

Two runs started in the same second get the same ``outputs/runs/<date>/<time>`` folder, and a reused
``hydra.run.dir`` points a second run at a finished one's; either way their configs, logs, statuses and
checkpoints would mix. The folder belongs to the run that creates its ``.owner`` file. A run whose
folder name was generated and is taken gets the same name with ``-1``, ``-2``, ...; a folder that the
user named (``hydra.run.dir=...``, ``hydra.sweep.dir=...``) and that holds another run is refused with
one line. ``resume=`` and the DDP ranks compose the run's saved config, which does not include this
callback: they own the folder by definition. So does a job that SLURM requeued, found by its job id, and
``resume=<sweep dir>``, which launches a sweep again in its own folder. A sweep holds its folder for as
long as it runs, so it is not continued twice at once.
"""

import contextlib
import fcntl
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from seqexp.app.cli import exit_with_user_error
from seqexp.app.cluster import launched_process, process_name_suffix
from seqexp.app.run_status import read_status, slurm_job_id
from seqexp.errors import ConfigError
from seqexp.run_layout import MULTIRUN_CONFIG, OWNER, SWEEP_STOPPED

# Set by resume=<sweep dir> (seqexp/app/resume.py) to the sweep's folder, which the sweep then re-enters.
RESUMED_SWEEP = "SEQEXP_RESUMED_SWEEP"


class OneRunPerFolder(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        several = not launched_process() or OmegaConf.select(config, "trainer.num_nodes", default=1) != 1
        if several and not _named(config, "hydra.run.dir"):
            # The processes of a run on several nodes must share its folder, so its name cannot be
            # generated: each would read its own clock (${now:...}).
            exit_with_user_error(
                ConfigError(
                    "a run on several nodes needs one folder that every node names: give each node the "
                    "same hydra.run.dir=<a folder they all see>"
                )
            )
        if launched_process():
            self._claim_or_exit(config, "hydra.run.dir")
        else:  # another node's process (or torchrun's next rank) of this run: the first one claims
            join_claimed_folder(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.sweep.dir)).resolve()
        if os.environ.get(RESUMED_SWEEP) != str(folder):
            self._claim_or_exit(config, "hydra.sweep.dir")
        try:  # kept open: the sweep holds its folder for as long as its process lives
            self._held = hold(Path(str(config.hydra.sweep.dir)))
        except ConfigError as error:
            exit_with_user_error(error)

    def _claim_or_exit(self, config: DictConfig, key: str) -> None:
        # Hydra turns a callback's exception into a warning and goes on: a run would then share a folder.
        try:
            self._claim(config, key)
        except Exception:
            traceback.print_exc()
            sys.exit(1)

    def _claim(self, config: DictConfig, key: str) -> None:
        # The folder's name may read Hydra's runtime (${hydra:runtime.choices.model}), which Hydra sets
        # only as the job starts; set it now to resolve the name (Hydra sets it again, the same).
        HydraConfig.instance().set_config(config)
        folder = Path(str(config.hydra.run.dir if key == "hydra.run.dir" else config.hydra.sweep.dir))
        try:
            claimed = claim_folder(folder, key, generated=not _named(config, key))
        except ConfigError as error:
            exit_with_user_error(error)
        except OSError as error:  # Hydra would only warn about a callback's exception, then fail anyway
            exit_with_user_error(
                ConfigError(f"{key}={str(folder)!r}: cannot create the run folder ({error.strerror})")
            )
        if claimed != folder:
            with read_write(config.hydra):  # Hydra's own section is read-only once composed
                config.hydra[key.split(".")[1]].dir = str(claimed)
                if key == "hydra.sweep.dir":
                    # The launchers compose each job's config again from these overrides (Hydra's
                    # load_sweep_config); without this one the jobs would go to the taken folder.
                    config.hydra.overrides.hydra.append(f"{key}='{claimed}'")


def _named(config: DictConfig, key: str) -> bool:
    """Whether the command line names the folder (``hydra.run.dir=...``) rather than Hydra generating it."""
    return any(override.split("=", 1)[0] == key for override in config.hydra.overrides.hydra)


def join_claimed_folder(config: DictConfig, wait_s: float = 300) -> None:
    """For a process that a cluster started beside the run's first one (another node's, or torchrun's
    or SLURM's next rank, with the same command): wait until the first process has claimed the folder,
    then write nothing there but this process's log (``train_node1.log``). A first process that never
    claims it (it was refused, or never started) ends the wait in one line, and so does a folder that
    holds a finished run: the first process refuses it too, and this one would wait for it in vain."""
    folder = Path(str(config.hydra.run.dir))
    deadline = time.monotonic() + wait_s
    while not (folder / OWNER).exists():
        if time.monotonic() > deadline:
            exit_with_user_error(
                ConfigError(
                    f"hydra.run.dir={str(folder)!r} was not claimed by the run's first process (node 0, "
                    f"rank 0) within {wait_s:.0f} s: start it with the same command"
                )
            )
        time.sleep(0.1)
    try:
        ended = (status := read_status(folder)) is not None and status.status != "running"
    except ValueError:  # not a status this run's first process wrote
        ended = True
    if ended:
        exit_with_user_error(
            ConfigError(
                f"hydra.run.dir={str(folder)!r} holds another run: choose a new folder, or continue that "
                f"run with resume={folder} on every node"
            )
        )
    with read_write(config.hydra):
        config.hydra.output_subdir = None
        config.hydra.job.name = f"{config.hydra.job.name}{process_name_suffix()}"


def claim_folder(folder: Path, key: str, generated: bool) -> Path:
    """Claim ``folder`` (or, for a generated name that is taken, the first free ``folder-N``) and return
    it; raise ConfigError for a named folder that another run owns.

    The claim is an ``.owner`` file created with O_EXCL, which exactly one process can do, so runs that
    race for one name end in different folders. A folder with other contents and no marker holds a run
    from before markers (or anything else): it is taken too, and left as it was.
    """
    for attempt in range(1000):
        candidate = folder if attempt == 0 else folder.with_name(f"{folder.name}-{attempt}")
        if _claim(candidate):
            return candidate
        if not generated:
            raise ConfigError(
                f"{key}={str(folder)!r} holds another run: choose a new folder, or continue that run with "
                f"resume={folder}"
            )
    raise ConfigError(f"{key}={str(folder)!r}: no free folder among {folder.name}-1 to -999")


def _claim(folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / OWNER
    try:
        descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return _same_slurm_job(folder) or _abandoned(folder)
    with os.fdopen(descriptor, "w") as file:
        file.write(f"{os.getpid()}\n")
    if any(entry.name != OWNER for entry in folder.iterdir()):
        marker.unlink()
        return _same_slurm_job(folder)
    return True


def _abandoned(folder: Path) -> bool:
    """Whether ``folder`` was claimed by a sweep that ended before any job began (a job's overrides that
    did not compose, say): nothing in it but the sweep's own records, and no process holds it. It is
    free again, so the corrected command can be run as it was typed."""
    names = {entry.name for entry in folder.iterdir()}
    # Hydra writes multirun.yaml after the sweep took its lock: a folder without it may be a claim in
    # progress, whose owner has not locked it yet.
    if MULTIRUN_CONFIG not in names or not names <= {OWNER, MULTIRUN_CONFIG, SWEEP_STOPPED}:
        return False
    try:
        os.close(hold(folder))
    except ConfigError:  # held: a sweep that is still starting
        return False
    return True


def release_folder(folder: Path) -> None:
    """Undo this process's claim of ``folder`` when nothing else was written there yet (a run refused
    after the claim): the folder goes, as if the run had never started."""
    marker = folder / OWNER
    if (
        marker.is_file()
        and marker.read_text().strip() == str(os.getpid())
        and len(list(folder.iterdir())) == 1
    ):
        marker.unlink()
        folder.rmdir()


def _same_slurm_job(folder: Path) -> bool:
    """Whether ``folder`` is this very SLURM job's, from before SLURM requeued it."""
    try:
        status = read_status(folder)
    except ValueError:
        return False
    return status is not None and status.slurm_job is not None and status.slurm_job == slurm_job_id()


@contextlib.contextmanager
def holding(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for this process while the block runs: a second process that wants it (two
    ``resume=`` of one run started together) is refused in one line instead of training beside it. The
    lock is the kernel's (flock on the folder's ``.owner``), so it goes with the process, however it
    ends."""
    descriptor = hold(folder)
    try:
        yield
    finally:
        os.close(descriptor)


def hold(folder: Path) -> int:
    """Lock ``folder`` for this process (see :func:`holding`) and return the descriptor that holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / OWNER, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise ConfigError(
            f"{folder} is in use by another process of seqexp (a run, a sweep, or a resume of one): wait for "
            "it to end, or stop it, then resume"
        ) from None
    except OSError:  # a file system without locks (some network mounts): the status check remains
        pass
    return descriptor
