"""``hydra/sweeper=optuna`` (conf/hydra/sweeper/optuna.yaml): the Sweeper class Hydra loads for a search.

Hydra instantiates a sweeper only from a class defined in a module under the ``hydra_plugins`` namespace
package, registered under that module's name (hydra/core/plugins.py), so the class lives here and not in
seqexp/app/; the search itself is seqexp/app/optuna_search.py. Hydra imports every module of
``hydra_plugins`` at the start of every command, so Optuna is imported only once a search starts.
"""

from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class OptunaSweeper(Sweeper):
    """Draws each trial from an Optuna study and launches it with the configured launcher."""

    def __init__(
        self,
        sampler: Any,
        direction: str,
        storage: Any,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None,
    ) -> None:
        # Hydra has built the sampler from its _target_ (conf/hydra/sweeper/sampler/).
        self.settings: dict[str, Any] = {
            "sampler": sampler,
            "direction": direction,
            "storage": storage,
            "study_name": study_name,
            "n_trials": n_trials,
            "n_jobs": n_jobs,
            "max_failure_rate": max_failure_rate,
            "params": {str(key): str(value) for key, value in (params or {}).items()},
        }
        self.launcher: Launcher | None = None
        self.sweep_dir: Path | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(OmegaConf.select(config, "hydra.sweep.dir"))

    def sweep(self, arguments: list[str]) -> None:
        from seqexp.app.optuna_search import SearchSettings, run_search

        assert self.launcher is not None and self.sweep_dir is not None, "Hydra calls setup before sweep"
        run_search(SearchSettings(**self.settings), self.launcher, arguments, self.sweep_dir)
