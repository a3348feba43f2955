"""Real Hydra multiruns of the train task: an Optuna search, a parallel joblib sweep, refused searches."""

import math

import optuna
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from seqexp.app.run_status import read_status
from seqexp.app.sweep_setup import expand_group_globs
from tests.helpers import REPO


def job_dirs(sweep):
    return sorted((p.parent for p in sweep.glob("*/.hydra")), key=lambda p: int(p.name.split("_", 1)[0]))


def test_an_optuna_search_minimizes_the_best_validation_loss_of_its_trials(
    tmp_path, run_script, tiny_sine, best_val_loss
):
    sweep = tmp_path / "search"
    # The tiny data fixes seq_length and hidden_size (fixed values leave the search space); the search
    # still picks the cell, layers, dropout, lr and clip. Trials are budgeted by steps, fewer than an
    # epoch (11 windows): each still validates at its last step and returns a real number.
    result = run_script(
        "train.py", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}",
        *tiny_sine, "trainer.max_steps=6",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    trials = job_dirs(sweep)
    assert [t.name.split("_", 1)[0] for t in trials] == ["0", "1", "2"]
    assert "optim.lr=" in trials[0].name  # each trial folder names its overrides
    best_losses = [best_val_loss(trial) for trial in trials]
    assert all(math.isfinite(loss) for loss in best_losses)
    # What each trial returned (recorded in status.json) is its best val/loss ...
    assert [read_status(t).objective for t in trials] == pytest.approx(best_losses, rel=1e-6)
    # ... and it is what the study recorded, in trial order.
    study = optuna.load_study(study_name="seqexp", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert [t.value for t in study.trials] == pytest.approx(best_losses, rel=1e-6)
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == pytest.approx(min(best_losses), rel=1e-6)
    # The trials were drawn from the search space: each names a cell, and they are not all alike.
    overrides = [tuple(OmegaConf.load(t / ".hydra" / "overrides.yaml")) for t in trials]
    assert all(any(o.startswith("model=") for o in trial) for trial in overrides)
    assert len(set(overrides)) == 3


def test_a_diverged_trial_counts_as_inf_and_the_search_goes_on(tmp_path, run_script, tiny_sine):
    sweep = tmp_path / "search"
    # Adam steps of 1e30 turn the loss into NaN; a fixed value leaves lr out of the search space.
    result = run_script(
        "train.py", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "optim.lr=1e30",
        f"hydra.sweep.dir={sweep}", *tiny_sine,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="seqexp", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert [(t.state.name, t.value) for t in study.trials] == [("COMPLETE", math.inf)] * 2
    assert [read_status(job).status for job in job_dirs(sweep)] == ["diverged", "diverged"]


@pytest.mark.slow  # the fault table's joblib row (tests/test_faults.py) runs a parallel sweep, fast tier
def test_a_joblib_sweep_runs_its_jobs_in_parallel_processes(tmp_path, run_script, tiny_sine, best_val_loss):
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=rnn,gru",
        f"hydra.sweep.dir={sweep}", *tiny_sine,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    jobs = job_dirs(sweep)
    statuses = [read_status(job) for job in jobs]
    assert [s.status for s in statuses] == ["ok", "ok"]
    assert [s.objective for s in statuses] == pytest.approx([best_val_loss(job) for job in jobs], rel=1e-6)
    assert statuses[0].pid != statuses[1].pid
    assert max(s.started for s in statuses) < min(s.finished for s in statuses), "the jobs did not overlap"


UNKNOWN = "is not a key of the configuration; did you mean"


@pytest.mark.parametrize(
    ("search_space", "message"),
    [
        ("model.hiden_size: choice(4, 8)", f"model.hiden_size {UNKNOWN} model.hidden_size?"),
        ("seqlength: choice(10, 20)", f"seqlength {UNKNOWN} seq_length?"),
        ("model: choice(rnn, peephole)", "model=peephole is not an option of the model group (options: "),
    ],
)
def test_a_search_space_naming_what_the_config_lacks_is_refused_before_any_trial(
    tmp_path, run_script, search_space, message
):
    # A search space of one's own, as a user would add it next to conf/hparams_search/optuna.yaml.
    own = tmp_path / "conf" / "hparams_search"
    own.mkdir(parents=True)
    (own / "mine.yaml").write_text(
        f"# @package _global_\ndefaults:\n  - optuna\nhydra:\n  sweeper:\n    params:\n      {search_space}\n"
    )
    sweep = tmp_path / "search"
    result = run_script(
        "train.py", "-m", "hparams_search=mine", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: hydra.sweeper.params: {message}"), result.stderr
    assert not sweep.exists()  # no study, no trial


def test_the_search_spaces_take_in_a_cell_added_as_one_yaml_file(tmp_path):
    # README: a new cell is a module and a conf/model/<name>.yaml, "nothing else needs to change" -
    # the search spaces say model: glob(*), which seqexp turns into a choice of every cell.
    added = tmp_path / "conf" / "model"
    added.mkdir(parents=True)
    (added / "my-cell.yaml").write_text("defaults:\n  - gru\n")
    for search in ("optuna", "optuna_text"):
        overrides = [f"hparams_search={search}", f"hydra.searchpath=[file://{tmp_path / 'conf'}]"]
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            config = compose("train", overrides=overrides, return_hydra_config=True)
            OmegaConf.set_readonly(config.hydra, True)  # as Hydra hands it to the callbacks
            expand_group_globs(config)
        cells = config.hydra.sweeper.params.model
        assert cells.startswith("choice(") and "my-cell" in cells
        assert {"rnn", "lstm", "gru", "peephole-lstm"} <= set(cells[len("choice(") : -1].split(", "))


def test_a_sweep_whose_folder_name_is_taken_runs_its_jobs_in_the_folder_it_claimed(
    tmp_path, run_script, tiny_sine
):
    # Another sweep of the same second owns outputs/multiruns/<date>/<time>: made here for the seconds this
    # sweep may start in, so that the race always happens. The sweep claims <time>-1, and every one of its
    # jobs must run there, not in the other sweep's folder.
    import datetime

    now = datetime.datetime.now()
    taken = [now + datetime.timedelta(seconds=s) for s in range(60)]
    for moment in taken:
        other = tmp_path / "outputs" / "multiruns" / moment.strftime("%Y-%m-%d") / moment.strftime("%H-%M-%S")
        (other / "another_sweeps_job").mkdir(parents=True)
    result = run_script("train.py", "-m", *tiny_sine, "trainer.max_epochs=1", "seed=1,2")
    assert result.returncode == 0, result.stderr[-3000:]
    (claimed,) = [p for p in (tmp_path / "outputs" / "multiruns").glob("*/*-1")]
    jobs = sorted(p for p in claimed.iterdir() if p.is_dir())
    assert [OmegaConf.load(job / ".hydra" / "config.yaml").seed for job in jobs] == [1, 2]
    assert all(read_status(job).status == "ok" for job in jobs)
    others = [p for p in (tmp_path / "outputs" / "multiruns").glob("*/*") if not p.name.endswith("-1")]
    assert all([c.name for c in other.iterdir()] == ["another_sweeps_job"] for other in others)  # untouched
