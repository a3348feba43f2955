"""User mistakes: one line naming the key, the value and what is allowed; non-zero exit; no traceback."""

import pytest

from tests.helpers import assert_user_error

BAD_VALUES = [
    ("clip=0", "clip=0", "> 0"),
    ("clip=-1", "clip=-1", "> 0"),
    ("seq_length=0", "seq_length=0", ">= 1"),
    ("data.batch_size=0", "data.batch_size=0", ">= 1"),
    ("data.val_fraction=0", "data.val_fraction=0", "between 0 and 1"),
    ("data.val_fraction=1.5", "data.val_fraction=1.5", "between 0 and 1"),
    ("model.hidden_size=0", "model.hidden_size=0", ">= 1"),
    ("model.dropout=1.0", "model.dropout=1.0", "[0, 1)"),
    ("model.dropout=-0.1", "model.dropout=-0.1", "[0, 1)"),
    ("optim.lr=0", "optim.lr=0", "> 0"),
    ("optim.scheduler=linear", "optim.scheduler='linear'", "none, cosine, plateau"),
    ("clip_algorithm=max", "clip_algorithm='max'", "norm, value"),
]


@pytest.mark.parametrize(("override", "named", "allowed"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_value_is_refused_before_training(tmp_path, override, named, allowed, run_script, tiny_sine):
    result = run_script("train.py", *tiny_sine, override, f"hydra.run.dir={tmp_path}/run")
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
    (["data.eval_burn_in=-1"], "data.eval_burn_in=-1 is invalid: it must be an integer >= 0"),
    (["model.nonlinearity=sigmoid"], "Unknown nonlinearity 'sigmoid'"),
    (["trainer.limit_val_batches=1", "data.eval_burn_in=1"], "data.eval_burn_in=1 leaves nothing to score"),
    (["trainer.limit_val_batches=0"], "trainer.limit_val_batches=0 turns validation off"),
]


@pytest.mark.parametrize(("overrides", "message"), LATE_BAD_VALUES, ids=[b[0][0] for b in LATE_BAD_VALUES])
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
    ],
)
def test_unknown_keys_and_options_are_refused_by_hydra(tmp_path, override, hydra_says, run_script):
    result = run_script("train.py", override, f"hydra.run.dir={tmp_path}/run")
    assert result.returncode != 0
    assert hydra_says in result.stderr
    assert "Traceback" not in result.stderr
