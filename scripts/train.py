"""Train a sequence model: `python scripts/train.py model=gru data=shakespeare` (see README.md)."""

import hydra
from omegaconf import DictConfig

from seqexp.app.cli import report_user_errors, run_app
from seqexp.app.run_names import register_resolvers
from seqexp.app.run_status import record_status
from seqexp.tasks.train import train

register_resolvers()  # the run folder names of conf/hydra/default.yaml


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@report_user_errors
@record_status
def main(cfg: DictConfig) -> float:
    return train(cfg)


if __name__ == "__main__":
    run_app(main)
