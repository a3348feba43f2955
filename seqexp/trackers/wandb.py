"""``logger=wandb``: Lightning's Weights & Biases logger, offline unless the user has logged in, taking
the figures and text samples as media, and continuing the same W&B run id when the run resumes (kept in
trackers.json)."""

import html
import netrc
import os
import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from seqexp.app.cluster import launched_process
from seqexp.trackers.attach import remember_id, remembered_id, require_package
from seqexp.trackers.run_log import SendsEachPointOnce

TRACKER = "wandb"


def logged_in() -> bool:
    """Whether W&B has credentials here (``wandb login`` writes them to ~/.netrc), without asking its
    server: a run must not wait on the network to decide."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbTracker(SendsEachPointOnce, WandbLogger):
    def __init__(self, run_dir: str, project: str, offline: bool | None) -> None:
        require_package("wandb", TRACKER)
        run_id = remembered_id(run_dir, TRACKER)
        self._resumed = run_id is not None
        if run_id is None:
            run_id = secrets.token_hex(8)  # W&B's ids are free-form; 64 random bits never collide
            if launched_process():  # the other DDP ranks start later and read it
                remember_id(run_dir, TRACKER, run_id)
        super().__init__(
            project=project,
            save_dir=run_dir,
            offline=not logged_in() if offline is None else offline,
            id=run_id,
            name="/".join(run_dir.rstrip("/").split("/")[-2:]),
            resume="allow",
        )

    @rank_zero_only
    def log_hyperparams(
        self, params: Any, metrics: Mapping[str, float] | None = None, step: int | None = None
    ) -> None:
        super().log_hyperparams(params)
        if metrics:  # W&B's place for a run's final numbers
            self.experiment.summary.update(dict(metrics))

    @rank_zero_only
    def show_figure(self, tag: str, image: np.ndarray, step: int) -> None:
        import wandb

        if self.is_new(tag, step):
            self.experiment.log({tag: wandb.Image(image), "trainer/global_step": step})

    @rank_zero_only
    def show_text(self, tag: str, text: str, step: int) -> None:
        import wandb

        if self.is_new(tag, step):
            page = wandb.Html(f"<pre>{html.escape(text)}</pre>")
            self.experiment.log({tag: page, "trainer/global_step": step})

    @rank_zero_only
    def end_record(self, succeeded: bool) -> None:
        if self._experiment is not None:
            self._experiment.finish(exit_code=0 if succeeded else 1)
            self._experiment = None
