"""The optimizer and the schedule come from conf/optim and conf/scheduler: the right torch objects, the
right learning rate at every step (read back from TensorBoard), and a new YAML file needs no code."""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from pytorch_lightning.callbacks import Timer

from seqexp.callbacks.time_budget import FollowTimeBudget
from seqexp.optimization import WarmupCosineFactor, make_optimizer
from seqexp.tasks.train import _flat_hparams, build
from tests.helpers import TINY_LOGGED, compose_train, read_events


def fit_and_read_lrs(overrides: list[str], out: Path) -> tuple[list[float], object]:
    """Train through seqexp.tasks.train.build as scripts/train.py does; the lr the LearningRateMonitor
    logged at each step, and the trainer."""
    datamodule, module, trainer = build(compose_train([*TINY_LOGGED, *overrides], out))
    trainer.fit(module, datamodule=datamodule)
    optimizer = type(trainer.optimizers[0]).__name__
    lrs = [event.value for event in read_events(out).Scalars(f"lr-{optimizer}")]
    assert len(lrs) == trainer.global_step, "one lr per optimizer step"
    return lrs, trainer


@pytest.mark.parametrize(
    "option, cls, extra",
    [
        ("adam", torch.optim.Adam, {}),
        ("adamw", torch.optim.AdamW, {}),
        ("sgd", torch.optim.SGD, {"momentum": 0.9}),
    ],
)
def test_each_optimizer_option_builds_its_torch_class_with_the_overrides(tmp_path, option, cls, extra):
    cfg = compose_train([f"optim={option}", "optim.lr=0.003", "optim.weight_decay=0.001"], tmp_path)
    optimizer = make_optimizer(dict(cfg.optim), [torch.nn.Parameter(torch.zeros(2))])
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.003, 0.001)
    assert {key: group[key] for key in extra} == extra


def test_constant_lr_without_a_scheduler(tmp_path):
    lrs, trainer = fit_and_read_lrs(["optim=adam", "scheduler=none", "optim.lr=0.02"], tmp_path)
    assert isinstance(trainer.optimizers[0], torch.optim.Adam) and trainer.lr_scheduler_configs == []
    assert lrs == pytest.approx([0.02] * 22)


def test_cosine_anneals_over_the_estimated_steps(tmp_path):
    lrs, trainer = fit_and_read_lrs(["optim=sgd", "scheduler=cosine", "optim.lr=0.04"], tmp_path)
    config = trainer.lr_scheduler_configs[0]
    assert isinstance(trainer.optimizers[0], torch.optim.SGD) and config.interval == "step"
    total = trainer.estimated_stepping_batches
    assert total == 22 and config.scheduler.lr_lambdas[0].total_steps == 22
    assert lrs == pytest.approx([0.02 * (1 + math.cos(math.pi * s / total)) for s in range(22)], rel=1e-5)


def test_a_time_budget_ends_the_cosine_when_the_time_is_spent(tmp_path):
    # 1000 epochs would be thousands of steps: annealed over those, the lr would hardly move in 4 seconds.
    overrides = [
        "scheduler=cosine",
        "optim.lr=0.04",
        "trainer.max_epochs=1000",
        "trainer.max_time=00:00:00:04",
    ]
    lrs, trainer = fit_and_read_lrs(overrides, tmp_path)
    steps = trainer.global_step
    assert trainer.estimated_stepping_batches > 10 * steps, "the time ended the run, not the epochs"
    assert steps > 100, "enough steps to follow the pace"
    assert lrs[0] == pytest.approx(0.04)
    # Annealed by the end of the budget (without the time it would still be at 0.04), and about half way
    # down half way through; the pace of a shared machine varies, hence the margins.
    middle = lrs[steps // 2]
    assert lrs[-1] < 0.004 and 0.005 < middle < 0.035, (lrs[-1], middle, steps)


class ScriptedTimer(Timer):
    """Lightning's Timer with a clock the test sets, so that the pace is exact rather than the machine's."""

    def __init__(self) -> None:
        super().__init__(duration="00:00:10:00")
        self.elapsed, self.remaining = 0.0, 600.0

    def time_elapsed(self, stage: str = "train") -> float:
        return self.elapsed

    def time_remaining(self, stage: str = "train") -> float:
        return self.remaining


def test_the_budget_is_the_steps_the_time_left_allows_at_the_pace_so_far():
    factor = WarmupCosineFactor(warmup_steps=0, total_steps=100_000, min_lr_ratio=0.0)
    timer = ScriptedTimer()
    trainer = SimpleNamespace(
        global_step=0,
        callbacks=[timer],
        strategy=SimpleNamespace(broadcast=lambda value, src: value),
        lr_scheduler_configs=[SimpleNamespace(scheduler=SimpleNamespace(lr_lambdas=[factor]))],
    )

    def at(step: int, elapsed: float, remaining: float) -> int | None:
        trainer.global_step, timer.elapsed, timer.remaining = step, elapsed, remaining
        FollowTimeBudget().on_train_batch_end(trainer, None, None, None, 0)
        return factor.budget_steps

    assert at(100, elapsed=2.0, remaining=6.0) == 400  # 50 steps a second: 300 more
    assert factor(200) == pytest.approx(0.5) and factor(400) == 0.0  # the cosine ends with the budget
    assert at(105, elapsed=2.2, remaining=0.1) == 400, "re-estimated only every BUDGET_EVERY_STEPS"
    assert at(200, elapsed=6.0, remaining=2.0) == 266  # the pace fell: 200 + 2 s at 33.3 steps a second
    assert at(300, elapsed=8.0, remaining=0.0) == 300  # the time is spent: the cosine ends here


def test_warmup_then_cosine_over_the_remaining_steps(tmp_path):
    overrides = ["optim=adamw", "scheduler=warmup_cosine", "scheduler.warmup_steps=5", "optim.lr=0.01"]
    lrs, trainer = fit_and_read_lrs(overrides, tmp_path)
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW)
    warmup = [0.01 * (s + 1) / 5 for s in range(5)]
    cosine = [0.005 * (1 + math.cos(math.pi * s / 17)) for s in range(17)]  # 22 - 5 steps
    assert lrs == pytest.approx(warmup + cosine, rel=1e-5)
    # The scheduler's state travels in the checkpoint, which still loads without unpickling code.
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["lr_schedulers"][0]["lr_lambdas"][0]["warmup_steps"] == 5
    assert checkpoint["hyper_parameters"]["scheduler"]["_target_"] == "seqexp.optimization.warmup_cosine"


def test_plateau_halves_the_lr_after_each_validation_without_improvement(tmp_path):
    # threshold=10 (relative): no val/loss counts as an improvement, patience 0: halve after every epoch.
    overrides = [
        "scheduler=plateau",
        "scheduler.patience=0",
        "+scheduler.threshold=10",
        "trainer.max_epochs=3",
    ]
    lrs, trainer = fit_and_read_lrs(overrides, tmp_path)
    config = trainer.lr_scheduler_configs[0]
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (config.interval, config.monitor) == ("epoch", "val/loss")
    assert lrs == pytest.approx([0.01] * 11 + [0.005] * 11 + [0.0025] * 11)


def test_a_new_yaml_file_in_each_group_works_without_code(tmp_path):
    conf = tmp_path / "conf"
    (conf / "optim").mkdir(parents=True)
    (conf / "scheduler").mkdir()
    (conf / "optim" / "rmsprop.yaml").write_text(
        "_target_: torch.optim.RMSprop\n_partial_: true\nlr: 0.008\n"
    )
    (conf / "scheduler" / "halving.yaml").write_text(
        "_target_: torch.optim.lr_scheduler.StepLR\n_partial_: true\nstep_size: 4\ngamma: 0.5\n"
        "lightning:\n  interval: step\n"
    )
    overrides = [f"hydra.searchpath=[file://{conf}]", "optim=rmsprop", "scheduler=halving"]
    lrs, trainer = fit_and_read_lrs(overrides, tmp_path / "run")
    assert isinstance(trainer.optimizers[0], torch.optim.RMSprop)
    assert lrs == pytest.approx([0.008 * 0.5 ** (s // 4) for s in range(22)])


def test_hparams_are_every_scalar_knob_and_the_chosen_options(tmp_path):
    overrides = ["optim=sgd", "scheduler=cosine", "+model.my_knob=3", "+my_top_level_knob=abc"]
    cfg = compose_train(overrides, tmp_path, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as the task sees it
    try:
        hparams = _flat_hparams(cfg)
    finally:
        HydraConfig.instance().cfg = None
    # New keys show up without a hand-kept list; so do the options chosen in each group.
    assert hparams["model.my_knob"] == 3 and hparams["my_top_level_knob"] == "abc"
    assert (hparams["optim"], hparams["scheduler"], hparams["model"], hparams["data"]) == (
        "sgd",
        "cosine",
        "rnn",
        "sine",
    )
    assert (
        hparams["optim.momentum"] == 0.9
        and hparams["scheduler.min_lr_ratio"] == 0.0
        and hparams["seq_length"] == 50
    )
    # How the run is executed, Hydra's own keys and the _target_ paths are not knobs.
    assert not [
        key for key in hparams if key.split(".")[0] in ("trainer", "callbacks", "logger", "paths", "hydra")
    ]
    assert not [key for key in hparams if "_target_" in key or "_partial_" in key]
    assert all(isinstance(value, str | int | float | bool | None) for value in hparams.values())


@pytest.mark.slow  # two gloo processes: about 30 s on 2 shared cores
def test_under_two_ddp_ranks_a_time_budget_anneals_the_cosine(tmp_path, run_script):
    # Every rank calls the broadcast at the same steps; a rank that skipped it would hang the run.
    result = run_script(
        "train.py", "trainer=ddp_cpu", "trainer.devices=2", "trainer.enable_progress_bar=false",
        "model.hidden_size=8", "scheduler=cosine", "optim.lr=0.04", "trainer.max_epochs=1000",
        "trainer.max_time=00:00:00:08", "trainer.log_every_n_steps=1", f"hydra.run.dir={tmp_path}/run",
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lrs = [event.value for event in read_events(tmp_path / "run").Scalars("lr-Adam")]
    assert len(lrs) > 50 and lrs[0] == pytest.approx(0.04) and lrs[-1] < 0.004, (len(lrs), lrs[-1])
