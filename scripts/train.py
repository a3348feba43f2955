"""Train a sequence model: `python scripts/train.py model=gru data=shakespeare` (see README.md).

`resume=<run folder | checkpoint>` continues a run: the command line is turned into that run's saved
config before Hydra reads it (seqexp/app/resume.py).
"""

import sys

import hydra
from omegaconf import DictConfig

from seqexp.app.cli import exit_with_user_error, report_user_errors, run_app
from seqexp.app.resume import NothingToResume, resume_arguments
from seqexp.app.run_names import register_resolvers
from seqexp.errors import ConfigError
from seqexp.tasks.train import run_job

register_resolvers()  # the run folder names of conf/hydra/default.yaml


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@report_user_errors
def main(cfg: DictConfig) -> float:
    return run_job(cfg)


if __name__ == "__main__":
    try:
        sys.argv = resume_arguments(sys.argv)
    except ConfigError as error:
        exit_with_user_error(error)
    except NothingToResume as finished:
        print(finished)
        sys.exit(0)
    run_app(main)
