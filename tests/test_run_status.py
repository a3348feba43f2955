import json
import math
import os
import signal
import socket
import subprocess
import sys

import pytest

from seqexp.app.run_status import RunStatus, read_status, run_recorded
from seqexp.errors import ConfigError, RunInterrupted
from seqexp.run_layout import STATUS_FILE


def test_a_finished_task_records_running_then_ok_with_its_objective(tmp_path):
    seen_while_running = []

    def task(value):
        seen_while_running.append(read_status(tmp_path))
        return value

    assert run_recorded(tmp_path, task, 0.25) == 0.25
    assert seen_while_running[0].status == "running"
    status = read_status(tmp_path)
    assert (status.status, status.objective, status.error) == ("ok", 0.25, None)
    assert status.finished >= status.started


@pytest.mark.parametrize("objective", [math.inf, math.nan])
def test_a_non_finite_objective_is_recorded_as_diverged(tmp_path, objective):
    run_recorded(tmp_path, lambda: objective)
    status = read_status(tmp_path)
    assert (status.status, status.objective) == ("diverged", None)
    json.loads((tmp_path / STATUS_FILE).read_text())  # still strict JSON: no NaN/Infinity literals


def test_an_error_is_recorded_as_failed_and_raised_again(tmp_path):
    def task():
        raise ConfigError("clip=-1 is invalid: it must be a number > 0, or null\nsecond line")

    with pytest.raises(ConfigError):
        run_recorded(tmp_path, task)
    status = read_status(tmp_path)
    assert status.status == "failed"
    assert status.error == "ConfigError: clip=-1 is invalid: it must be a number > 0, or null"


def test_an_interruption_that_a_library_wrapped_is_recorded_and_raised_as_an_interruption(tmp_path):
    # A second Ctrl-C raises RunInterrupted wherever the process is: inside Lightning's TensorBoard logger,
    # which re-raises any error as a ValueError, it once ended a run as failed, with a traceback.
    def task():
        try:
            raise RunInterrupted(signal.SIGINT)
        except Exception as error:
            raise ValueError("you tried to log 0.4 which is currently not supported") from error

    with pytest.raises(RunInterrupted) as raised:
        run_recorded(tmp_path, task)
    assert raised.value.signum == signal.SIGINT
    status = read_status(tmp_path)
    assert (status.status, status.signal, status.error) == ("interrupted", signal.SIGINT, None)


def test_a_running_status_tells_a_live_process_from_one_that_is_gone():
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    here = socket.gethostname()
    assert not RunStatus("running", 0.0, here, os.getpid()).process_gone()
    assert RunStatus("running", 0.0, here, int(ended.stdout)).process_gone()
    # A process on another machine cannot be checked from here: it is assumed to be running.
    assert not RunStatus("running", 0.0, here + "-elsewhere", int(ended.stdout)).process_gone()


def test_a_damaged_status_file_is_a_value_error(tmp_path):
    assert read_status(tmp_path) is None
    (tmp_path / STATUS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not a valid status file"):
        read_status(tmp_path)


@pytest.mark.parametrize("variable", ["LOCAL_RANK", "RANK"])
def test_other_ranks_of_a_multi_process_run_leave_the_status_to_rank_zero(tmp_path, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    assert run_recorded(tmp_path, lambda: 0.5) == 0.5
    assert read_status(tmp_path) is None
