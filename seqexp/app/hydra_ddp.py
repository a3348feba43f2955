"""Hydra + DDP: the ranks Lightning starts re-run this job, not the command line.

Lightning starts ranks 1..N-1 of a single-node DDP run by re-running ``sys.argv`` with
``hydra.run.dir`` pinned. Under ``-m`` that re-runs the whole sweep in every child, and any override that
resolves differently on a second composition (``${now:...}``, a sweeper's choices) can give the ranks
different configurations. Instead each child composes exactly this job's saved configuration
(``<job dir>/.hydra/config.yaml``) as a single run in the same folder, writing no config of its own.
"""

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd, to_absolute_path

from seqexp.errors import ConfigError
from seqexp.run_layout import HYDRA_DIR, SAVED_CONFIG

if TYPE_CHECKING:
    import subprocess

    import pytorch_lightning as pl

# What Lightning's subprocess launcher sets in the parent's environment when it starts the ranks.
_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def job_child_command(local_rank: int) -> tuple[Sequence[str], str]:
    """The command and working directory that start rank ``local_rank`` of the current Hydra job."""
    import __main__  # here, not at the top: the main module is only final once the app runs

    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    # A resumed run keeps its folder's .hydra as it was (output_subdir=null) and resumes from its config.
    saved = job_dir / (hydra_cfg.output_subdir or SAVED_CONFIG.parent)
    if not (saved / SAVED_CONFIG.name).is_file():
        raise ConfigError(
            f"hydra.output_subdir=null: DDP ranks need the job's saved config; keep it ({HYDRA_DIR})"
        )
    resume = [o for o in hydra_cfg.overrides.task if o.split("=", 1)[0].lstrip("+") == "resume"]
    if __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += [
        f"--config-path={saved}",
        f"--config-name={SAVED_CONFIG.stem}",
        f"hydra.run.dir='{job_dir}'",
        "hydra.output_subdir=null",
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",
        *resume,
    ]
    return command, get_original_cwd()


def start_ddp_ranks_from_the_job_config() -> None:
    """Make Lightning's subprocess launcher start DDP ranks with :func:`job_child_command`."""
    from pytorch_lightning.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = job_child_command


def _ranks_started_here(trainer: "pl.Trainer") -> list["subprocess.Popen[bytes]"]:
    """Lightning's launcher's own list of the ranks 1..N-1 this process started (empty for none)."""
    return getattr(getattr(trainer.strategy, "launcher", None), "procs", [])


def lost_rank(trainer: "pl.Trainer") -> str | None:
    """Which DDP rank this process started has died, and how, in words; None when all are alive (or
    this process started none). A rank that dies fails the next collective of the others with a
    transport error that does not say which rank it was."""
    ranks = list(enumerate(_ranks_started_here(trainer), start=1))
    deadline = time.monotonic() + 2  # the collective can fail a moment before the kernel reaps the rank
    while ranks and time.monotonic() < deadline:
        for rank, process in ranks:
            code = process.poll()
            if code is not None and code != 0:
                how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                return f"DDP rank {rank} (process {process.pid}) died ({how})"
        time.sleep(0.05)
    return None


def stop_the_other_ranks(trainer: "pl.Trainer") -> None:
    """End the ranks this process started, and keep Lightning from ending this process.

    Lightning's launcher watches the ranks from a thread and, within 5 s of one dying, SIGKILLs the rest
    *and this process*, which may then be writing the run's status. Once a lost rank is known, the
    survivors are SIGKILLed here (they may hang in a collective) and the list that the thread watches,
    the launcher's own ``procs``, is emptied, which the thread reads as "all ended well"."""
    procs = _ranks_started_here(trainer)
    for process in procs:
        if process.poll() is None:
            process.kill()
            process.wait()
    procs.clear()


@contextmanager
def ddp_job_scope() -> Iterator[None]:
    """Leave no DDP traces for the next job of a sweep run in this same process.

    Lightning keeps the process group initialized after fit, and its launcher leaves ``LOCAL_RANK`` and
    friends in ``os.environ``; the next job would then believe its ranks were started externally and
    wait for ranks that exited with the previous job.
    """
    saved = {name: os.environ.get(name) for name in _LAUNCHER_ENV}
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
