"""seqexp's own Optuna sweeper: the sweep grammar as Optuna distributions, a real search's study and
results, and a search whose trials all fail."""

import math

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from seqexp.app.optuna_search import SearchSettings, run_search
from seqexp.app.run_status import read_status
from seqexp.app.search_space import search_space
from seqexp.errors import ConfigError
from tests.helpers import assert_user_error


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model=choice(gru, lstm)", CategoricalDistribution(["gru", "lstm"])),
        ("model.hidden_size=16,32", CategoricalDistribution([16, 32])),
        ("clip=choice(0.5, 1.0)", CategoricalDistribution([0.5, 1.0])),
        # Hydra's range stops before its end, as Python's does: 1, 4, 7.
        ("model.num_layers=range(1, 10, 3)", IntDistribution(1, 7, step=3)),
        ("seq_length=range(10, 40)", IntDistribution(10, 39)),
        ("model.dropout=range(0.0, 0.5, 0.25)", FloatDistribution(0.0, 0.25, step=0.25)),
        ("model.dropout=interval(0.0, 0.3)", FloatDistribution(0.0, 0.3)),
        ("optim.lr=tag(log, interval(0.001, 0.05))", FloatDistribution(0.001, 0.05, log=True)),
        # Hydra reads an interval's ends as floats, integers too.
        ("seed=interval(1, 8)", FloatDistribution(1.0, 8.0)),
    ],
)
def test_each_sweep_of_hydras_grammar_becomes_the_optuna_distribution_it_describes(override, expected):
    space = search_space([override])
    assert list(space.distributions.values()) == [expected]
    assert space.fixed == {}


def test_a_plain_value_is_set_in_every_trial_and_a_later_override_wins():
    # The preset's params come first, the command line after: optim.lr=1e-3 takes lr out of the search.
    space = search_space(["optim.lr=tag(log, interval(0.001, 0.05))", "clip=choice(1, 5)", "optim.lr=1e-3"])
    assert space.fixed == {"optim.lr": "0.001"}
    assert list(space.distributions) == ["clip"]
    assert search_space(["clip=1", "clip=choice(1, 5)"]).fixed == {}


def test_a_sweep_optuna_cannot_draw_from_is_refused():
    with pytest.raises(ConfigError, match="draws from choice"):
        search_space(["data.path=glob(*.txt)"])
    for empty in ("range(10, 10)", "range(40, 10, -10)"):
        with pytest.raises(ConfigError, match="needs a positive step and a value"):
            search_space([f"seq_length={empty}"])


def test_a_diverged_trials_inf_completes_and_ranks_last():
    study = optuna.create_study(direction="minimize")
    for value in (math.inf, 2.0, math.inf):
        study.tell(study.ask(), value)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert study.best_value == 2.0


class ScriptedLauncher:
    """A launcher whose jobs return the values it is given, in order; an exception is a failed job."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.batches = []  # (initial_job_idx, overrides of each job)

    def launch(self, job_overrides, initial_job_idx):
        self.batches.append((initial_job_idx, [list(o) for o in job_overrides]))
        returns = []
        for _ in job_overrides:
            outcome = self.outcomes.pop(0)
            failed = isinstance(outcome, Exception)
            returns.append(JobReturn(status=JobStatus.FAILED if failed else JobStatus.COMPLETED))
            returns[-1].return_value = outcome
        return returns


def settings(**changes):
    return SearchSettings(
        **{
            "sampler": optuna.samplers.RandomSampler(seed=0), "direction": "minimize", "storage": None,
            "study_name": None, "n_trials": 4, "n_jobs": 2, "max_failure_rate": 0.0,
            "params": {"clip": "choice(1, 5)"}, **changes,
        }
    )  # fmt: skip


def test_trials_go_out_in_batches_numbered_on_and_the_failure_rate_counts_every_finished_trial(tmp_path):
    # One failure in the first batch of two is a rate of 0.5, not above it: the search goes on.
    launcher = ScriptedLauncher([1.0, ConfigError("bad trial"), 3.0, math.inf])
    run_search(settings(max_failure_rate=0.5), launcher, ["seed=7"], tmp_path)
    assert [first for first, _ in launcher.batches] == [0, 2]
    jobs = [job for _, batch in launcher.batches for job in batch]
    assert all(job[0] in ("clip=1", "clip=5") and job[1:] == ["seed=7"] for job in jobs), jobs
    results = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert results.best_value == 1.0 and results.best_params.clip in (1, 5)

    # One failure of two finished trials is not above 0.5; two of three are: the first failure is raised.
    launcher = ScriptedLauncher([2.0, ValueError("first"), ValueError("second"), 4.0])
    with pytest.raises(ValueError, match="first"):
        run_search(settings(max_failure_rate=0.5, n_jobs=1, n_trials=4), launcher, [], tmp_path / "x")
    assert [first for first, _ in launcher.batches] == [0, 1, 2]


SEARCH = [
    "-m", "hparams_search=optuna", "data.n_points=600", "trainer.max_steps=20",
    "trainer.enable_progress_bar=false",
]  # fmt: skip


def test_a_search_tells_its_study_each_trials_objective_and_names_the_best(tmp_path, run_script):
    sweep = tmp_path / "search"
    # Windows of 10 fit the tiny data's validation split whatever else the trials draw.
    result = run_script(
        "train.py", *SEARCH, "seq_length=10", "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}"
    )
    assert result.returncode == 0, result.stderr[-3000:]

    jobs = sorted((p.parent for p in sweep.glob("*/.hydra")), key=lambda p: int(p.name.split("_", 1)[0]))
    objectives = [read_status(job).objective for job in jobs]
    assert len(jobs) == 3 and all(math.isfinite(v) for v in objectives)
    study = optuna.load_study(study_name="seqexp", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert [t.value for t in study.trials] == pytest.approx(objectives, rel=1e-9)
    # Each job ran what its trial drew (the cell named in its overrides).
    for trial, job in zip(study.trials, jobs, strict=True):
        assert f"model={trial.params['model']}" in OmegaConf.load(job / ".hydra" / "overrides.yaml")
    best = study.trials[objectives.index(min(objectives))]
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.name == "optuna"
    assert results.best_value == pytest.approx(min(objectives), rel=1e-9)
    assert OmegaConf.to_container(results.best_params) == best.params
    assert f"Best value: {best.value}" in result.stderr + result.stdout


def test_a_search_whose_trials_fail_stops_once_failures_pass_the_rate_with_one_error_line(
    tmp_path, run_script
):
    sweep = tmp_path / "search"
    # Windows longer than the 120 validation points: every trial is refused with a ConfigError.
    result = run_script(
        "train.py", *SEARCH, 'hydra.sweeper.params.seq_length="choice(400,500)"', "hydra.sweeper.n_trials=3",
        "hydra.sweeper.max_failure_rate=0.5", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert_user_error(result, "too short for one window of seq_length=")
    # One failure of one finished trial is above 0.5: the other two trials never start.
    study = optuna.load_study(study_name="seqexp", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL"]
    assert not (sweep / "optimization_results.yaml").exists()


def test_a_study_can_live_in_a_storage_hydra_builds_such_as_a_journal_file(tmp_path, run_script):
    # JournalStorage takes no URL: the storage is given as a _target_, which Hydra instantiates.
    sweep, journal = tmp_path / "search", tmp_path / "journal.log"
    storage = (
        "{_target_:optuna.storages.JournalStorage,log_storage:"
        f"{{_target_:optuna.storages.journal.JournalFileBackend,file_path:'{journal}'}}}}"
    )
    result = run_script(
        "train.py", *SEARCH, "seq_length=10", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    backend = optuna.storages.journal.JournalFileBackend(str(journal))
    study = optuna.load_study(study_name="seqexp", storage=optuna.storages.JournalStorage(backend))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    assert not (sweep / "optuna.db").exists()
