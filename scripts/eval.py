"""Score a checkpoint on a split: `python scripts/eval.py ckpt=PATH split=val|test` (see README.md)."""

import hydra
from omegaconf import DictConfig

from seqexp.app.cli import report_user_errors, run_app


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@report_user_errors
def main(cfg: DictConfig) -> None:
    from seqexp.tasks.evaluate import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    run_app(main)
