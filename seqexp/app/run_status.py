"""The status file of a run, ``<run dir>/status.json``: written by the train task, read by the report.

Hydra leaves a job's folder in place when the job fails, but nothing in it says whether the job
finished, failed or is still going. The task records that here: ``running`` when it starts, then
``ok``, ``diverged`` (its training loss stopped being finite or exploded: its objective is inf),
``interrupted`` (a signal stopped it after saving ``checkpoints/last.ckpt``; ``resume=`` continues it)
or ``failed`` (with the error) when it ends; a job of a sweep that a signal stopped before the job
began records ``not started`` (seqexp/app/sweep_signals.py). A job killed outright (SIGKILL, out of
memory) cannot write its end; the host and process id let a reader on the same machine tell it from one
that is still running.


Example::

    {"status": "failed", "started": 1795858440.9, "host": "vm", "pid": 4828,
     "finished": 1795858444.1, "objective": null, "error": "ConfigError: clip=-1 is invalid: ..."}
"""

import json
import math
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from seqexp.app.cluster import launched_process
from seqexp.data.files import process_alive, write_atomically
from seqexp.errors import JobNotStarted, RunInterrupted, first_line, root_cause, user_error
from seqexp.run_layout import STATUS_FILE

STATUSES = ("running", "ok", "diverged", "interrupted", "failed", "not started")

T = TypeVar("T")


@dataclass(frozen=True)
class RunStatus:
    status: str  # one of STATUSES
    started: float  # Unix time
    host: str
    pid: int
    finished: float | None = None
    objective: float | None = None  # what the task returned, when a finite number
    error: str | None = None  # "<exception type>: <first line of its message>" of a failed run
    signal: int | None = None  # the signal that interrupted the run
    note: str | None = None  # what else a reader should know (a validation the signal cut short)
    # SLURM's job (and array task) id: a job that SLURM requeues finds its own folder by it.
    slurm_job: str | None = None

    def process_gone(self) -> bool:
        """True when the recorded process is known to have ended: same host, no such process.

        Only meaningful for a ``running`` status; a run on another machine is assumed alive.
        """
        return not process_alive(self.host, self.pid)


def write_status(run_dir: Path, status: RunStatus) -> None:
    """Write ``status.json`` atomically, so a reader never sees half a file (and a failed write leaves
    no temporary file behind)."""
    text = json.dumps(asdict(status), indent=2) + "\n"
    write_atomically(run_dir / STATUS_FILE, lambda file: file.write(text.encode()))


def read_status(run_dir: Path) -> RunStatus | None:
    """The run's status, or None when it has no status file.

    Raises ValueError when the file exists but is not a status this module wrote.
    """
    path = run_dir / STATUS_FILE
    if not path.is_file():
        return None
    try:
        status = RunStatus(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"{path} is not a valid status file: {error}") from None
    if status.status not in STATUSES:
        raise ValueError(f"{path} has an unknown status {status.status!r}")
    return status


def slurm_job_id() -> str | None:
    """This SLURM job's id (``<job>_<array task>`` in an array), the same after SLURM requeues it."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else job


def _interruptions_unwrapped(task: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``task(*args, **kwargs)``, where a RunInterrupted that a library wrapped in an error of its own comes
    out as itself. A second Ctrl-C raises it from the signal handler wherever the process is, and a library
    that re-raises every Exception as its own (Lightning's TensorBoard logger: a ValueError "you tried to
    log ...") would otherwise turn the stop into a failure with a traceback."""
    try:
        return task(*args, **kwargs)
    except Exception as error:
        cause = root_cause(error)
        if cause is not error and isinstance(cause, RunInterrupted):
            raise cause from None
        raise


def run_recorded(run_dir: Path, task: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``task(*args, **kwargs)``, recording its start and end in ``run_dir/status.json``."""
    if not launched_process():
        return task(*args, **kwargs)
    running = RunStatus(
        "running", started=time.time(), host=socket.gethostname(), pid=os.getpid(), slurm_job=slurm_job_id()
    )
    write_status(run_dir, running)
    try:
        result = _interruptions_unwrapped(task, *args, **kwargs)
    except RunInterrupted as interrupted:
        fate = "not started" if isinstance(interrupted, JobNotStarted) else "interrupted"
        ended = replace(
            running, status=fate, finished=time.time(), signal=interrupted.signum, note=interrupted.note
        )
        write_status(run_dir, ended)
        raise
    except KeyboardInterrupt:  # Ctrl-C before training started or after it ended: interrupted as well
        ended = replace(running, status="interrupted", finished=time.time(), signal=signal.SIGINT)
        write_status(run_dir, ended)
        raise RunInterrupted(signal.SIGINT) from None
    except BaseException as error:  # KeyboardInterrupt and SystemExit end the run just as well
        described = first_line(user_error(error) or root_cause(error))
        write_status(run_dir, replace(running, status="failed", finished=time.time(), error=described))
        raise
    number = float(result) if isinstance(result, int | float) and not isinstance(result, bool) else None
    finite = number is not None and math.isfinite(number)
    write_status(
        run_dir,
        replace(
            running,
            status="diverged" if number is not None and not finite else "ok",
            finished=time.time(),
            objective=number if finite else None,
        ),
    )
    return result
