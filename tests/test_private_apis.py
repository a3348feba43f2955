"""The private library functions seqexp depends on are still there and still used the way it assumes.

Each one is protected by a version pin in pyproject.toml (with a comment naming it); when a new release
moves one, this test says which and where, instead of DDP runs failing in some obscure way.
"""

import inspect
import subprocess
import sys
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies.launchers import subprocess_script

from seqexp.app.hydra_ddp import job_child_command, start_ddp_ranks_from_the_job_config, stop_the_other_ranks

PATCHED = "pytorch_lightning.strategies.launchers.subprocess_script._hydra_subprocess_cmd"
FIX = (
    f"pytorch-lightning {pl.__version__}: seqexp/app/hydra_ddp.py replaces {PATCHED}; adapt it to this "
    "release before raising the pytorch-lightning pin in pyproject.toml"
)


def test_the_launcher_still_has_the_hydra_command_function_we_replace():
    original = getattr(subprocess_script, "_hydra_subprocess_cmd", None)
    assert callable(original), f"{FIX} (the function is gone)"
    assert list(inspect.signature(original).parameters) == ["local_rank"], f"{FIX} (its parameters changed)"
    assert list(inspect.signature(job_child_command).parameters) == ["local_rank"]


def test_the_launcher_looks_the_function_up_at_call_time_and_unpacks_command_and_cwd():
    launch = subprocess_script._SubprocessScriptLauncher._call_children_scripts
    # A global lookup when the ranks start, so replacing the module attribute takes effect.
    assert "_hydra_subprocess_cmd" in launch.__code__.co_names, f"{FIX} (the launcher no longer calls it)"
    source = inspect.getsource(launch)
    assert "command, cwd = _hydra_subprocess_cmd(local_rank)" in source, f"{FIX} (it is called differently)"


def test_starting_the_ranks_installs_our_command(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(subprocess_script, "_hydra_subprocess_cmd", subprocess_script._hydra_subprocess_cmd)
    start_ddp_ranks_from_the_job_config()
    assert subprocess_script._hydra_subprocess_cmd is job_child_command


def test_the_launcher_still_watches_its_own_list_of_ranks():
    # seqexp/app/hydra_ddp.py's stop_the_other_ranks empties that list to call the watcher off.
    launch = subprocess_script._SubprocessScriptLauncher.launch
    assert "_launch_process_observer(self.procs)" in inspect.getsource(launch), f"{FIX} (it watches a copy)"


def test_once_a_rank_is_lost_the_survivors_end_and_lightnings_watcher_spares_this_process():
    from lightning_fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

    lost = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    lost.wait()
    survivor = subprocess.Popen(["sleep", "60"])
    # Stands in for the launching process, which the watcher would SIGKILL along with the ranks.
    launching = subprocess.Popen(["sleep", "60"])
    try:
        launcher = SimpleNamespace(procs=[lost, survivor])
        watcher = _ChildProcessObserver(main_pid=launching.pid, child_processes=launcher.procs)
        stop_the_other_ranks(SimpleNamespace(strategy=SimpleNamespace(launcher=launcher)))
        assert survivor.poll() == -9
        assert watcher._run() is True, "the watcher stops watching"
        with pytest.raises(subprocess.TimeoutExpired):  # still running half a second later: spared
            launching.wait(timeout=0.5)
    finally:
        launching.kill()
        survivor.kill()


def test_the_aten_ops_of_the_peephole_backward_exist():
    for op in (torch.ops.aten.sigmoid_backward, torch.ops.aten.tanh_backward):
        assert hasattr(op, "grad_input"), f"torch {torch.__version__}: seqexp/models/peephole.py uses {op}"


def test_the_fit_loop_still_logs_at_its_batches_that_stepped_counter():
    # seqexp/callbacks/exact_resume.py sets it at a resumed fit's first batch and
    # seqexp/trackers/run_log.py gives figures that step.
    loop_fix = (
        f"pytorch-lightning {pl.__version__}: seqexp/callbacks/exact_resume.py and "
        "seqexp/trackers/run_log.py use fit_loop.epoch_loop._batches_that_stepped as the logging step; adapt "
        "them before raising the pin"
    )
    from pytorch_lightning.loops.training_epoch_loop import _TrainingEpochLoop
    from pytorch_lightning.trainer.connectors.logger_connector.logger_connector import _LoggerConnector

    assert "_batches_that_stepped" in inspect.getsource(_TrainingEpochLoop.__init__), loop_fix
    assert "_batches_that_stepped" in inspect.getsource(_LoggerConnector.log_metrics), loop_fix


def test_the_fit_loop_still_skips_the_plateau_step_while_restarting():
    # seqexp/callbacks/exact_resume.py clears the flag at a resumed run's first epoch end to undo the skip.
    fix = (
        f"pytorch-lightning {pl.__version__}: seqexp/callbacks/exact_resume.py clears fit_loop._restarting "
        "so that a resumed run's first epoch end steps plateau schedulers; adapt it before raising the pin"
    )
    from pytorch_lightning.loops.fit_loop import _FitLoop

    assert "not self.restarting" in inspect.getsource(_FitLoop.on_advance_end), fix
    assert "self._restarting" in inspect.getsource(_FitLoop.restarting.fget), fix  # the flag it reads


def test_the_fit_loop_still_holds_the_loader_states_it_has_yet_to_hand_back():
    # seqexp/callbacks/exact_resume.py hands them over itself when the data was set up before the restore.
    fix = (
        f"pytorch-lightning {pl.__version__}: seqexp/callbacks/exact_resume.py hands the training loader its "
        "saved position through _FitLoop's _combined_loader_states_to_load, _load_combined_loader_states and "
        "_data_fetcher; adapt it before raising the pin"
    )
    from pytorch_lightning.loops.fit_loop import _FitLoop

    setup = inspect.getsource(_FitLoop.setup_data)
    assert "self._load_combined_loader_states()" in setup and "iter(self._data_fetcher)" in setup, fix
    assert "_combined_loader_states_to_load" in inspect.getsource(_FitLoop._load_combined_loader_states), fix
    # The early return that leaves the states unloaded once the data is set up.
    assert "if self._combined_loader is not None and not self._should_reload_train_dl" in setup, fix
