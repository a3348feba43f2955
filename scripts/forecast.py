"""Forecast past the end of a series: `python scripts/forecast.py ckpt=RUN horizon=N out=forecast.csv`."""

import hydra
from omegaconf import DictConfig

from seqexp.app.cli import report_user_errors, run_app


@hydra.main(version_base="1.3", config_path="../conf", config_name="forecast")
@report_user_errors
def main(cfg: DictConfig) -> None:
    from seqexp.tasks.forecast import forecast

    forecast(cfg)


if __name__ == "__main__":
    run_app(main)
