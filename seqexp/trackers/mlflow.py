"""``logger=mlflow``: Lightning's MLflow logger, taking the figures and text samples as artifacts, and
continuing the same MLflow run when the run resumes (its id kept in trackers.json)."""

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from seqexp.trackers.attach import remember_id, remembered_id, require_package
from seqexp.trackers.run_log import SendsEachPointOnce

if TYPE_CHECKING:
    from mlflow import MlflowClient

TRACKER = "mlflow"


class MLflowTracker(SendsEachPointOnce, MLFlowLogger):
    def __init__(self, run_dir: str, tracking_uri: str, experiment_name: str) -> None:
        require_package("mlflow", TRACKER)
        self._run_dir = Path(run_dir)
        resumed = remembered_id(run_dir, TRACKER)
        self._resumed = resumed is not None
        super().__init__(
            experiment_name=experiment_name,
            tracking_uri=tracking_uri,
            run_name="/".join(self._run_dir.parts[-2:]),
            run_id=resumed,
            tags={"run_dir": str(self._run_dir)},
        )

    @property
    @rank_zero_experiment
    def experiment(self) -> "MlflowClient":
        if not self._initialized and self._run_id is None and self._experiment_id is None:
            self._experiment_id = shared_experiment(self._mlflow_client, self._experiment_name)
        client = super().experiment
        if not self._resumed:  # the run was created just now: remember it for a resume
            # (run_id would ask for the experiment again: this is it.)
            assert self._run_id is not None, "MLFlowLogger.experiment creates the run"
            remember_id(self._run_dir, TRACKER, self._run_id)
            self._resumed = True
        return client

    def held_steps(self) -> dict[str, int]:
        client, run_id = self.experiment, self.run_id
        assert run_id is not None, "a resumed run has its id"
        names = client.get_run(run_id).data.metrics
        return {name: max(m.step for m in client.get_metric_history(run_id, name)) for name in names}

    @rank_zero_only
    def log_hyperparams(
        self, params: Any, metrics: Mapping[str, float] | None = None, step: int | None = None
    ) -> None:
        # MLflow's params cannot change: a resumed run keeps the values it started with (its command
        # line's resume= and trainer limits are the ones that differ) and adds only new keys.
        logged = self.experiment.get_run(self.run_id).data.params
        super().log_hyperparams({k: v for k, v in dict(params).items() if k not in logged})
        if metrics:
            self.log_metrics(metrics, step)

    @rank_zero_only
    def show_figure(self, tag: str, image: np.ndarray, step: int) -> None:
        # Artifacts are named by step, so a resume that logs a step again replaces its figure.
        self.experiment.log_image(self.run_id, image, artifact_file=f"figures/{tag}/step-{step:07d}.png")

    @rank_zero_only
    def show_text(self, tag: str, text: str, step: int) -> None:
        self.experiment.log_text(self.run_id, text, f"samples/{tag}/step-{step:07d}.txt")

    @rank_zero_only
    def end_record(self, succeeded: bool) -> None:
        if self._initialized:
            self.experiment.set_terminated(self.run_id, "FINISHED" if succeeded else "KILLED")


def shared_experiment(client: "MlflowClient", name: str) -> str:
    """The id of the experiment ``name``, created if there is none. Runs that start together (a parallel
    sweep, DDP jobs side by side) may all find none; one creates it, and the others take the one made."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage != "deleted":  # a deleted one is made again
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        made = client.get_experiment_by_name(name)
        if made is None:
            raise
        return made.experiment_id
