"""A search: trials drawn from an Optuna study, launched in batches as Hydra jobs, their objectives told back.

This is the work of ``hydra.sweeper: optuna`` (the Sweeper class Hydra loads is
hydra_plugins/seqexp_optuna_sweeper, which calls :func:`run_search`). It uses only Optuna's public
ask-and-tell API: the study draws every trial of a batch (``ask``), the launcher runs the batch, and
each trial is told what its job returned (``tell``), so a study in a shared database takes trials from
any number of workers.

``n_trials`` is per worker: each process runs that many trials of its own. A job's return value is its
objective; the train task returns inf for a diverged run, which Optuna keeps as a completed trial that
ranks last. A job that raised is a failed trial; once more than ``max_failure_rate`` of this worker's
finished trials have failed, the search ends by raising the first failure (a ConfigError becomes the
one ``error:`` line of seqexp/app/cli.py).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from omegaconf import OmegaConf

from seqexp.app.search_space import SearchSpace, search_space
from seqexp.errors import ConfigError

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"  # the name the released hydra-optuna-sweeper gave it
DIRECTIONS = ("minimize", "maximize")


@dataclass
class SearchSettings:
    """``hydra.sweeper`` of conf/hydra/sweeper/optuna.yaml, the sampler already built by Hydra."""

    sampler: optuna.samplers.BaseSampler | None
    direction: str
    storage: str | optuna.storages.BaseStorage | None  # a database URL, or a storage Hydra built
    study_name: str | None
    n_trials: int
    n_jobs: int
    max_failure_rate: float
    params: dict[str, str]


def run_search(
    settings: SearchSettings, launcher: Launcher, arguments: Sequence[str], sweep_dir: Path
) -> None:
    """Run ``settings.n_trials`` trials of the study, ``n_jobs`` at a time, then write the best trial to
    ``<sweep dir>/optimization_results.yaml``. ``arguments`` are the command line's overrides, which
    win over ``settings.params``."""
    check_settings(settings)
    space = search_space([*(f"{key}={value}" for key, value in settings.params.items()), *arguments])
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=settings.storage,
        sampler=settings.sampler,
        direction=optuna.study.StudyDirection[settings.direction.upper()],
        load_if_exists=True,  # workers that share a storage and study name add to one study
    )
    log.info(f"Study name: {study.study_name}")
    log.info(f"Storage: {settings.storage}")
    log.info(f"Sampler: {type(study.sampler).__name__}")
    log.info(f"Direction: {settings.direction}")

    finished, failures = 0, []
    while finished < settings.n_trials:
        batch = min(settings.n_jobs, settings.n_trials - finished)
        trials = [study.ask(space.distributions) for _ in range(batch)]
        overrides = [trial_overrides(trial, space) for trial in trials]
        returns = launcher.launch(overrides, initial_job_idx=finished)
        for trial, job in zip(trials, returns, strict=True):
            failure = tell(study, trial, job)
            if failure is not None:
                failures.append(failure)
        finished += len(trials)
        if failures and len(failures) / finished > settings.max_failure_rate:
            log.error(
                f"Failed {len(failures)} times out of {finished} with "
                f"max_failure_rate={settings.max_failure_rate}."
            )
            raise failures[0]
    write_results(study, sweep_dir)


def check_settings(settings: SearchSettings) -> None:
    """ConfigError for a setting the search cannot run with, before the study is opened."""
    if settings.direction not in DIRECTIONS:
        raise ConfigError(
            f"hydra.sweeper.direction={settings.direction!r}: the train task's objective is one number; "
            f"choose {' or '.join(DIRECTIONS)}"
        )
    if not 0.0 <= settings.max_failure_rate <= 1.0:
        raise ConfigError(
            f"hydra.sweeper.max_failure_rate={settings.max_failure_rate} is not between 0 and 1"
        )
    if settings.n_trials < 1 or settings.n_jobs < 1:
        raise ConfigError(
            f"hydra.sweeper.n_trials={settings.n_trials}, n_jobs={settings.n_jobs}: both must be at least 1"
        )


def trial_overrides(trial: optuna.Trial, space: SearchSpace) -> list[str]:
    """The Hydra overrides of one trial's job: what the study drew, then what every trial sets."""
    drawn = [f"{key}={value}" for key, value in trial.params.items()]
    return [*drawn, *(f"{key}={value}" for key, value in space.fixed.items())]


def tell(study: optuna.Study, trial: optuna.Trial, job: JobReturn) -> Exception | None:
    """Tell the study how a trial's job ended; the exception when it failed, else None."""
    try:
        value = float(job.return_value)  # raises what the job raised, when it failed
    except Exception as error:  # the job's own exception: any kind
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log.warning(f"Failed experiment: {error}")
        return error
    study.tell(trial, value)
    return None


def write_results(study: optuna.Study, sweep_dir: Path) -> None:
    """The study's best trial (of every worker, when it is shared), logged and written as the released
    hydra-optuna-sweeper wrote it: ``name``, ``best_params``, ``best_value``."""
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not completed:
        log.warning("No trial completed: there is no best trial to write")
        return
    best = study.best_trial
    log.info(f"Best parameters: {best.params}")
    log.info(f"Best value: {best.value}")
    results: dict[str, Any] = {"name": "optuna", "best_params": best.params, "best_value": best.value}
    OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
