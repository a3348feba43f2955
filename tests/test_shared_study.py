"""A search fed by many workers (issue 24): two ``-m hparams_search=...`` processes given one
``hydra.sweeper.storage`` and ``study_name`` add their trials to one Optuna study, over SQLite on one
machine and over a real PostgreSQL server, the storage that workers on several machines share.

Each worker keeps its own sweep folder (the second one started in the same second gets ``-1``), runs
``hydra.sweeper.n_trials`` trials of its own, and reports the study's best; ``scripts/report.py`` on the
folder that holds the workers' folders covers every worker's jobs.
"""

import pytest

from seqexp.app.run_status import read_status
from tests.helpers import assert_user_error, free_port, postgres_server, report

TRIALS_PER_WORKER = 2
WORKER = [
    "-m",
    "hparams_search=optuna",
    "hydra.sweeper.study_name=shared",
    f"hydra.sweeper.n_trials={TRIALS_PER_WORKER}",
    "data.n_points=600",
    "trainer.max_steps=20",
    "trainer.enable_progress_bar=false",
]


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "postgresql"])
def test_two_workers_feed_one_study_and_the_report_covers_both(tmp_path, launch, capsys, storage):
    import optuna

    if storage == "sqlite":
        url = f"sqlite:///{tmp_path / 'study.db'}"
        _two_workers(tmp_path, launch, url)
    else:
        with postgres_server(free_port()) as url:
            _two_workers(tmp_path, launch, url)
            study = optuna.load_study(study_name="shared", storage=url)
            trials = study.trials
        url = None
    if url is not None:
        trials = optuna.load_study(study_name="shared", storage=url).trials

    # n_trials is per worker: the study holds both workers' trials, numbered as one study.
    assert [t.state.name for t in trials] == ["COMPLETE"] * 2 * TRIALS_PER_WORKER
    assert sorted(t.number for t in trials) == list(range(2 * TRIALS_PER_WORKER))
    # The workers drew different trials (their samplers' seeds differ) ...
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 2 * TRIALS_PER_WORKER
    # ... each of which is a job in one of the two workers' folders, its objective the trial's value.
    sweeps = sorted(tmp_path.glob("outputs/multiruns/*/*"))
    assert len(sweeps) == 2
    jobs = [job for sweep in sweeps for job in sweep.iterdir() if (job / "status.json").is_file()]
    assert [len([j for j in jobs if j.parent == sweep]) for sweep in sweeps] == [TRIALS_PER_WORKER] * 2
    objectives = sorted(read_status(job).objective for job in jobs)
    assert objectives == pytest.approx(sorted(t.value for t in trials), rel=1e-6)

    code, out, _ = report(sweeps[0].parent, capsys)
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith(tuple(f"{s.name}/" for s in sweeps))]
    assert sorted(row.split()[0].split("/")[0] for row in rows) == sorted(
        sweep.name for sweep in sweeps for _ in range(TRIALS_PER_WORKER)
    )


def _two_workers(tmp_path, launch, url: str) -> None:
    workers = [
        launch(*WORKER, f"hydra.sweeper.storage={url}", f"hydra.sweeper.sampler.seed={seed}")
        for seed in (1, 2)
    ]
    for worker in workers:
        assert worker.wait() == 0, worker.output()
        assert "Traceback" not in worker.output(), worker.output()


def test_a_study_database_that_cannot_be_opened_is_one_line_before_any_trial(tmp_path, run_script):
    url = f"postgresql+psycopg2://seqexp@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    result = run_script("train.py", *WORKER, f"hydra.sweeper.storage={url}", "hydra.sweeper.sampler.seed=1")
    assert_user_error(result, f"hydra.sweeper.storage='{url}' cannot be opened", "Connection refused")
    assert not list(tmp_path.glob("outputs/multiruns/*/*")), "the refused search left its folder"
