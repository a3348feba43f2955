"""A sweep stopped by a signal accounts for every job, leaves no process behind, and can be finished with
one command.

- The sweep's own process (where Hydra's launcher runs) passes each stop signal it gets on to the jobs
  that are running (their pids are in their status.json: the joblib workers, or this very process) and
  writes ``<sweep dir>/stopped.json``. Each running job stops as a run does: it validates, saves, records
  ``interrupted``.
- A job that would start after that (the basic launcher moves on to the next job, a joblib worker picks up
  a queued one) records ``not started`` in its folder, beside the overrides Hydra saved there, and does
  not train. So every job has a folder, and the report lists it.
- The sweep then exits with 128 + the signal number, and the joblib workers are shut down with it.
- ``resume=<sweep dir>`` (seqexp/app/resume.py) launches the same sweep again in its folder: a finished
  job returns the objective it recorded, an interrupted one continues from its last checkpoint, and one
  that never trained starts (seqexp/tasks/train.py).
"""

import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from seqexp.app.cli import in_multirun
from seqexp.app.run_status import read_status
from seqexp.data.files import write_atomically
from seqexp.errors import STOP_SIGNALS
from seqexp.run_layout import STATUS_FILE, SWEEP_STOPPED

_sweep_dir: Path | None = None  # the folder of the sweep this process launches
_stopped_by: int | None = None  # the first stop signal this process's sweep got


class StopTheSweepOnSignal(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _sweep_dir
        _sweep_dir = Path(str(config.hydra.sweep.dir))
        # A stop recorded by an earlier launch of this sweep (resume=<sweep dir> launches it again).
        (_sweep_dir / SWEEP_STOPPED).unlink(missing_ok=True)
        for signum in STOP_SIGNALS:
            signal.signal(signum, forward_to_jobs)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        shut_down_workers()


def forward_to_jobs(signum: int, frame: FrameType | None) -> None:
    """The sweep process's handler of the stop signals.

    A Ctrl-C is passed on as SIGTERM: a terminal sends it to the jobs too (they share its process group),
    and a job counts a second SIGINT as a second Ctrl-C, which stops it at once, without saving.
    """
    assert _sweep_dir is not None, "installed by on_multirun_start"
    mark_stopped(_sweep_dir, signum)  # first: a job that starts from now on sees it
    passed_on = signal.SIGTERM if signum == signal.SIGINT else signum
    for pid in _running_jobs(_sweep_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, passed_on)


def stopped_by() -> int | None:
    """The stop signal that this process's sweep got, or None."""
    return _stopped_by


def exit_stopped(signum: int) -> NoReturn:
    """End the sweep's process once its jobs have, with 128 + the first signal, saying how to go on."""
    shut_down_workers()
    signum = _stopped_by or signum
    where = _sweep_dir or "<sweep dir>"
    advice = f"python scripts/train.py resume={where} finishes it"
    print(f"the sweep was stopped by signal {signum}: {advice}", file=sys.stderr, flush=True)
    sys.exit(128 + signum)


def mark_stopped(sweep_dir: Path, signum: int) -> None:
    """Record that ``sweep_dir``'s sweep is stopping (the first signal is kept)."""
    global _stopped_by
    _stopped_by = _stopped_by or signum
    if not (sweep_dir / SWEEP_STOPPED).is_file():
        text = json.dumps({"signal": signum}) + "\n"
        write_atomically(sweep_dir / SWEEP_STOPPED, lambda file: file.write(text.encode()))


def this_sweep_stopped() -> int | None:
    """Within a job of a sweep: the signal that stopped its sweep, or None (also outside a sweep)."""
    if not in_multirun():
        return None
    marker = Path(str(HydraConfig.get().sweep.dir)) / SWEEP_STOPPED
    try:
        return int(json.loads(marker.read_text())["signal"])
    except FileNotFoundError:
        return None


def shut_down_workers() -> None:
    """End the joblib launcher's worker processes now: idle, each holds the memory of a trained job, and
    they would otherwise outlive a sweep that a signal ended."""
    if "joblib.externals.loky" not in sys.modules:  # the basic launcher ran the jobs in this process
        return
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(reuse=True).shutdown(wait=True)


def _running_jobs(sweep_dir: Path) -> list[int]:
    """The pids of the jobs of ``sweep_dir`` that run on this machine, this process left out."""
    pids = []
    host = socket.gethostname()
    for status_file in sweep_dir.glob(f"*/{STATUS_FILE}"):
        try:
            status = read_status(status_file.parent)
        except ValueError:  # a damaged status file: its job cannot be found, and checks the mark itself
            continue
        if status is not None and status.status == "running" and status.host == host:
            pids.append(status.pid)
    return [pid for pid in pids if pid != os.getpid()]
