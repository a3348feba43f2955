"""Sample text from a character model: `python scripts/sample.py ckpt=PATH prime="And even said"`."""

import hydra
from omegaconf import DictConfig

from seqexp.app.cli import report_user_errors, run_app
from seqexp.app.config_checks import check_sample_config


@hydra.main(version_base="1.3", config_path="../conf", config_name="sample")
@report_user_errors
def main(cfg: DictConfig) -> None:
    check_sample_config(cfg)  # before torch is imported, so a mistyped value is reported at once
    from seqexp.tasks.sample import sample

    sample(cfg)


if __name__ == "__main__":
    run_app(main)
