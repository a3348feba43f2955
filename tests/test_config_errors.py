"""User mistakes: one line naming the key, the value and what is allowed; non-zero exit; no traceback."""

import inspect
import re
import subprocess
import sys
import typing

import pytest

from seqexp.app.config_checks import TRAINER_PRECISIONS, check_train_config
from seqexp.errors import ConfigError
from tests.helpers import REPO, assert_user_error, compose_train, script_env

BAD_VALUES = [
    ("clip=0", "clip=0", "> 0"),
    ("clip=-1", "clip=-1", "> 0"),
    ("seq_length=0", "seq_length=0", ">= 1"),
    ("data.batch_size=0", "data.batch_size=0", ">= 1"),
    ("data.seq_length=0", "data.seq_length=0", ">= 1"),
    ("data.eval_burn_in=-1", "data.eval_burn_in=-1", "an integer >= 0, or null"),
    ("data.val_fraction=0", "data.val_fraction=0", "between 0 and 1"),
    ("data.val_fraction=1.5", "data.val_fraction=1.5", "between 0 and 1"),
    ("model.hidden_size=0", "model.hidden_size=0", ">= 1"),
    ("model.dropout=1.0", "model.dropout=1.0", "[0, 1)"),
    ("model.dropout=-0.1", "model.dropout=-0.1", "[0, 1)"),
    ("model.input_dropout=0.5x", "model.input_dropout='0.5x'", "[0, 1)"),
    ("optim.lr=0", "optim.lr=0", "> 0"),
    ("optim.weight_decay=-1", "optim.weight_decay=-1", ">= 0"),
    ("scheduler=cosine scheduler.lightning.interval=x", "scheduler.lightning.interval='x'", "step, epoch"),
    ("clip_algorithm=max", "clip_algorithm='max'", "norm, value"),
    ("threads=0", "threads=0", "an integer >= 1, or null"),
    ("reuse_freed_memory=maybe", "reuse_freed_memory='maybe'", "true or false"),
]


@pytest.mark.parametrize(("override", "named", "allowed"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_value_is_refused_before_training(tmp_path, override, named, allowed, run_script, tiny_sine):
    result = run_script("train.py", *tiny_sine, *override.split(), f"hydra.run.dir={tmp_path}/run")
    assert_user_error(result, named, allowed)
    assert not (tmp_path / "run" / "tensorboard").exists(), "nothing may be trained or logged"


def test_series_too_short_for_one_window_names_the_needed_length(tmp_path, run_script, tiny_sine):
    overrides = [*tiny_sine, "data.n_points=40", "data.batch_size=4", f"hydra.run.dir={tmp_path}/run"]
    result = run_script("train.py", *overrides)
    assert_user_error(result, "train split has 32 items", "seq_length=10", "batch_size=4", "at least 44")


# Values only the datamodule, the cell or the Trainer can judge: refused after the heavy imports, but
# still before training, as one line.
LATE_BAD_VALUES = [
    (["data.n_points=1"], "data.n_points=1 is invalid: it must be an integer >= 2"),
    (["model.nonlinearity=sigmoid"], "Unknown nonlinearity 'sigmoid'"),
    (["trainer.limit_val_batches=1", "data.eval_burn_in=1"], "data.eval_burn_in=1 leaves nothing to score"),
    (["trainer.limit_val_batches=0"], "trainer.limit_val_batches=0 turns validation off"),
    (["optim=sgd", "optim.momentum=-1"], "torch.optim.SGD(lr=0.05, momentum=-1"),
    (["scheduler=warmup_cosine", "scheduler.warmup_steps=-1"], "scheduler.warmup_steps=-1 is invalid"),
]


@pytest.mark.parametrize(("overrides", "message"), LATE_BAD_VALUES, ids=[b[0][-1] for b in LATE_BAD_VALUES])
def test_values_judged_by_the_data_cell_or_trainer_are_refused_as_one_line(
    tmp_path, run_script, tiny_sine, overrides, message
):
    result = run_script("train.py", *tiny_sine, *overrides, f"hydra.run.dir={tmp_path}/run")
    assert_user_error(result, message)
    assert not (tmp_path / "run" / "tensorboard").exists(), "nothing may be trained or logged"


@pytest.mark.parametrize(
    ("override", "hydra_says"),
    [
        ("model.hiden_size=3", "Could not override 'model.hiden_size'"),
        ("model=transformer", "model/transformer"),
        ("optim=adagrad", "optim/adagrad"),
        ("scheduler=linear", "scheduler/linear"),
    ],
)
def test_unknown_keys_and_options_are_refused_by_hydra(tmp_path, override, hydra_says, run_script):
    result = run_script("train.py", override, f"hydra.run.dir={tmp_path}/run")
    assert result.returncode != 0
    assert hydra_says in result.stderr
    assert "Traceback" not in result.stderr


# The options every cell shares are checked with the configuration, for any cell, before torch is
# imported; the cell's constructor checks only its own options (docs/design.md §2).
SHARED_CELL_OPTIONS = [
    ("model.hidden_size=2.5", "model.hidden_size=2.5 is invalid: it must be an integer >= 1"),
    ("model.num_layers=0", "model.num_layers=0 is invalid: it must be an integer between 1 and 64"),
    ("model.dropout=1.0", "model.dropout=1.0 is invalid: it must be in [0, 1)"),
    ("model.input_dropout=1.0", "model.input_dropout=1.0 is invalid: it must be in [0, 1)"),
    (
        "model.variational_dropout=maybe",
        "model.variational_dropout='maybe' is invalid: it must be true or false",
    ),
    ("model.weight_dropout=-0.1", "model.weight_dropout=-0.1 is invalid: it must be in [0, 1)"),
]


@pytest.mark.parametrize("cell", ["rnn", "peephole-lstm"])
@pytest.mark.parametrize(
    ("override", "message"), SHARED_CELL_OPTIONS, ids=[s[0] for s in SHARED_CELL_OPTIONS]
)
def test_options_every_cell_shares_are_checked_with_the_config(tmp_path, cell, override, message):
    with pytest.raises(ConfigError) as refused:
        check_train_config(compose_train([f"model={cell}", override], tmp_path))
    assert str(refused.value) == message


def test_the_precisions_checked_with_the_config_are_the_ones_the_trainer_takes():
    """TRAINER_PRECISIONS is written out so that checking it needs no Lightning; it must stay Lightning's."""
    import pytorch_lightning as pl

    hint = inspect.signature(pl.Trainer).parameters["precision"].annotation
    literals = [arm for arm in typing.get_args(hint) if typing.get_origin(arm) is typing.Literal]
    takes = tuple(value for arm in literals for value in typing.get_args(arm))
    assert takes == TRAINER_PRECISIONS, "copy the Trainer's precision values into config_checks.py"


# A value the configuration alone shows wrong costs Hydra's start-up, not the import of torch and
# Lightning (docs/design.md §2). Run cold, as a user runs it: the test session and the warm processes of
# tests/warm_start.py have torch loaded already.
REFUSED_BEFORE_TORCH = [
    ("clip=0", "clip=0 is invalid"),
    ("trainer.precision=bogus", "trainer.precision='bogus' is invalid"),
    ("data.seq_length=0", "data.seq_length=0 is invalid"),
    ("resume=nowhere", "resume='nowhere' does not exist"),
]


@pytest.mark.parametrize(
    ("override", "message"), REFUSED_BEFORE_TORCH, ids=[r[0] for r in REFUSED_BEFORE_TORCH]
)
def test_a_value_the_config_alone_refuses_is_answered_before_torch_is_imported(tmp_path, override, message):
    train = str(REPO / "scripts" / "train.py")
    result = subprocess.run(
        # (resume= takes no run folder: it continues the one it names)
        [
            sys.executable,
            "-X",
            "importtime",
            train,
            override,
            *(["hydra.run.dir=run"] * ("resume" not in override)),
        ],
        cwd=tmp_path,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_user_error(result, message)
    heavy = re.findall(r"\|\s+(torch|pytorch_lightning|lightning_fabric)$", result.stderr, re.MULTILINE)
    assert not heavy, f"{override} was refused only after importing {', '.join(heavy)}"
