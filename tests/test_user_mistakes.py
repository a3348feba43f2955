"""The mistakes a new user makes daily (issue 10): each ends as one ``error:`` line and exit status 2,
before training, with the cause (not a wrapper) in status.json.

The entry points are run for real for each kind of failure path (the task, Hydra itself, a multirun,
sampling, the report); the fuzz over every numeric key runs the train task in-process, where one
configuration costs a fraction of a second rather than a new interpreter.
"""

import json
import math
import random
import subprocess
import sys

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from seqexp.data.spec import DataSpec
from seqexp.errors import user_error
from seqexp.models.size import BYTES_PER_PARAMETER, available_memory, parameter_count
from seqexp.tasks.train import train
from tests.helpers import (
    REPO,
    assert_one_line,
    assert_user_error,
    hydra_job_config,
    job_folder,
    model_options,
    script_env,
)

TINY = [
    "data.n_points=600",
    "seq_length=10",
    "model.hidden_size=8",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
]

# (override, what the one line must say): refused in the train task, before training.
TASK_MISTAKES = [
    ("trainer.precision=bogus", "trainer.precision='bogus' is invalid: it must be one of 64, 32, 16"),
    ("trainer.devices=0", "trainer.devices=0 is invalid"),
    ("trainer.max_steps=-2", "trainer.max_steps=-2 is invalid: it must be an integer >= 1, or -1"),
    ("trainer.max_steps=0", "trainer.max_steps=0 is invalid"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 is invalid"),
    ("trainer.limit_train_batches=0", "trainer.limit_train_batches=0 is invalid"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0 is invalid: it must be an integer >= 1"),
    ("trainer.val_check_interval=100", "trainer.val_check_interval=100 is longer than an epoch (11 training"),
    ("model.num_layers=100000", "model.num_layers=100000 is invalid: it must be an integer between 1 and 64"),
    ("trainer.max_epochs=abc", "trainer.max_epochs='abc' is invalid: it must be an integer >= 1"),
    ("data.amplitude=[1]", "data.amplitude=[1] is invalid: it must be a number"),
]


@pytest.mark.parametrize(("override", "message"), TASK_MISTAKES, ids=[m[0] for m in TASK_MISTAKES])
def test_a_mistake_is_refused_in_one_line_before_training(tmp_path, override, message):
    with hydra_job_config("train", [*TINY, override], tmp_path) as cfg, pytest.raises(Exception) as error:
        train(cfg)
    assert_one_line(error.value, message)
    assert not (tmp_path / "tensorboard").exists(), "nothing may be trained or logged"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_a_gpu_trainer_without_a_gpu_is_one_line_and_the_cause_is_in_status_json(tmp_path, run_script):
    result = run_script("train.py", *TINY, "trainer=gpu", f"hydra.run.dir={tmp_path}/run")
    assert_user_error(result, "trainer.accelerator=gpu but this machine has no GPU", "trainer=cpu")
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["error"].startswith("ConfigError: trainer.accelerator=gpu"), status


def test_a_model_too_big_for_memory_says_how_big_and_what_fits(tmp_path, run_script):
    result = run_script("train.py", *TINY, "model.hidden_size=1000000", f"hydra.run.dir={tmp_path}/run")
    assert_user_error(
        result, "model.hidden_size=1000000", "1e+12 parameters", "16 TB to train", "or less fits"
    )
    fits = int(result.stderr.split("model.hidden_size=")[-1].split()[0])
    with hydra_job_config("train", [*TINY, f"model.hidden_size={fits}"], tmp_path) as cfg:
        options = OmegaConf.to_container(cfg.model)
    sine = DataSpec(input_size=1, output_size=1, tokens=False)
    needed = parameter_count(options, sine) * BYTES_PER_PARAMETER
    assert needed <= available_memory(torch.device("cpu")) * 1.2, "the size it names must fit (memory moves)"
    assert parameter_count({**options, "hidden_size": fits * 2}, sine) * BYTES_PER_PARAMETER > needed


def test_a_run_folder_that_cannot_be_created_is_one_line(run_script):
    result = run_script("train.py", *TINY, "hydra.run.dir=/dev/null/x")
    assert_user_error(result, "cannot create the run folder", "/dev/null/x", "hydra.run.dir")


def test_a_config_error_in_a_multirun_is_one_line_not_a_traceback(tmp_path, run_script):
    result = run_script("train.py", "-m", *TINY, "clip=0,1", f"hydra.sweep.dir={tmp_path}/sweep")
    assert_user_error(result, "clip=0 is invalid")
    other = job_folder(tmp_path / "sweep", 1)
    assert json.loads((other / "status.json").read_text())["status"] == "ok", "the other job still ran"


def test_sampling_into_a_folder_or_from_nan_weights_is_one_line(tmp_path, run_script):
    from seqexp.module import SequenceLightningModule

    module = SequenceLightningModule(
        model=model_options("torch.nn.GRU", hidden_size=4),
        data={"input_size": 3, "output_size": 3, "tokens": True, "vocab": ["a", "b", "c"]},
        optim={"lr": 0.01, "weight_decay": 0.0},
    )
    with torch.no_grad():
        module.model.head.weight.fill_(math.nan)
    ckpt = tmp_path / "nan.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, ckpt)
    assert torch.load(ckpt, weights_only=True)

    into_folder = run_script("sample.py", f"ckpt={ckpt}", "prime=ab", f"out={tmp_path}")
    assert_user_error(into_folder, f"out='{tmp_path}' is a folder")
    nan = run_script("sample.py", f"ckpt={ckpt}", "prime=ab")
    assert_user_error(nan, "has NaN or infinite weights (head.weight)", "its run diverged")


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])
def test_report_piped_into_head_ends_quietly_with_its_files_written(tmp_path, unbuffered):
    # Enough rows (a board of tens of KB) that head closes the pipe before the report has printed them.
    for job in range(300):
        run = tmp_path / str(job)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text("model:\n  cell: torch.nn.RNN\n")
    command = f"{sys.executable} {REPO / 'scripts' / 'report.py'} {tmp_path} | head -n 1"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        env={**script_env(), "PYTHONUNBUFFERED": unbuffered},
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert result.returncode in (0, 141)
    assert len((tmp_path / "leaderboard.csv").read_text().splitlines()) == 301  # a header and every run
    assert (tmp_path / "leaderboard.md").is_file()


# -- fuzz: random bad values into every numeric key ----------------------------------------------------
def numeric_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            keys += numeric_keys(value, f"{path}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            keys.append(path)
    return keys


def bad_values(rng: random.Random) -> list[object]:
    """A value of the wrong type, and a negative number (out of range for most keys, fine for some)."""
    return [
        rng.choice(["abc", "1e", "x9", "[1, 2]", "{a: 1}"]),
        rng.choice([-rng.randint(2, 999), -rng.uniform(2, 99)]),
    ]


def test_fuzz_every_numeric_key_with_bad_values_is_one_line_or_a_run(tmp_path):
    """A bad value either trains as a value (a negative phase is a phase) or is one ConfigError line:
    never another exception, which the entry points would show as a traceback."""
    with hydra_job_config("train", TINY, tmp_path / "compose") as cfg:
        keys = numeric_keys(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
    assert len(keys) > 25, keys  # the trainer, data, model, optim and callbacks keys all take part
    rng = random.Random(10)
    refused, findings = 0, []
    for n, key in enumerate(keys):
        for value in bad_values(rng):
            run_dir = tmp_path / f"{n}_{abs(hash(str(value)))}"
            override = f"{key}={value}"
            budget = [
                "trainer.max_steps=1",
                "trainer.limit_val_batches=1",
                "data.eval_burn_in=0",
                "+trainer.enable_model_summary=false",
            ]
            with hydra_job_config("train", [*TINY, *budget, override], run_dir) as job:
                try:
                    train(job)
                except Exception as error:  # the entry points print the ConfigError behind a wrapper
                    if user_error(error) is not None:
                        assert_one_line(user_error(error))
                        refused += 1
                        continue
                    findings.append(f"{override}: {type(error).__name__}: {str(error)[:200]}")
    assert not findings, "\n".join(findings)
    assert refused > len(keys), "most bad values must be refused"
