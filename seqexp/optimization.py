"""The optimizer and the learning-rate schedule, built from what conf/optim and conf/scheduler name.

Neither is chosen in code: each YAML names a callable with ``_target_`` (a torch class, or a function such
as :func:`warmup_cosine`) and its arguments, and this module only adds what is known when training
starts: the parameters, the optimizer, and for a schedule over the whole run its number of optimizer
steps. So a new optimizer or schedule is a YAML file (docs/design.md §7). The configs stay plain dicts in
the module's hyperparameters, so checkpoints still load with ``weights_only=True``.
"""

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from hydra.utils import instantiate

from seqexp.errors import ConfigError, first_line

# Keys of a conf/scheduler/*.yaml that are for this module, not for the scheduler's constructor.
RUN_STEPS_ARG = "run_steps_arg"  # the constructor argument that receives the run's optimizer steps
LIGHTNING = "lightning"  # Lightning's lr_scheduler settings: interval (step | epoch), frequency, monitor


def make_optimizer(cfg: dict[str, Any], params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``cfg._target_(params, **cfg)``: the optimizer conf/optim/<name>.yaml describes."""
    return _call("optim", cfg, params)


def make_lr_scheduler(
    cfg: dict[str, Any] | None, optimizer: torch.optim.Optimizer, run_steps: Callable[[], float]
) -> dict[str, Any] | None:
    """Lightning's ``lr_scheduler`` entry for conf/scheduler/<name>.yaml, or None for a constant lr.

    ``run_steps`` gives the run's number of optimizer steps; it is only asked for when the YAML names a
    ``run_steps_arg`` (a run without a step or epoch limit has no such number).
    """
    if not cfg:
        return None
    constructor = {k: v for k, v in cfg.items() if k not in (RUN_STEPS_ARG, LIGHTNING)}
    kwargs = {}
    if cfg.get(RUN_STEPS_ARG):
        steps = run_steps()
        if not math.isfinite(steps):
            raise ConfigError(
                f"scheduler {cfg['_target_']} anneals over the whole run, but the run has no length: "
                "set trainer.max_steps or trainer.max_epochs"
            )
        kwargs[cfg[RUN_STEPS_ARG]] = max(int(steps), 1)
    scheduler = _call("scheduler", constructor, optimizer, **kwargs)
    lightning = dict(cfg.get(LIGHTNING) or {})
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not lightning.get("monitor"):
        raise ConfigError(
            f"scheduler {cfg['_target_']} needs the metric it watches: set scheduler.lightning.monitor, "
            "e.g. val/loss"
        )
    return {"scheduler": scheduler, **lightning}


def check_optimization(optim: dict[str, Any], scheduler: dict[str, Any] | None) -> None:
    """Build both on a stand-in parameter, so that a bad class path or argument (which only the torch
    class can judge) is one ConfigError before training rather than a traceback at its start."""
    optimizer = make_optimizer(optim, [torch.nn.Parameter(torch.zeros(1))])
    make_lr_scheduler(scheduler, optimizer, run_steps=lambda: 1)


def _call(group: str, cfg: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Instantiate ``cfg`` (with ``_partial_: true``) and call it, any failure as one ConfigError."""
    target = cfg.get("_target_")
    if not target:
        raise ConfigError(f"{group} names no _target_: give the import path of a class (see conf/{group}/)")
    try:
        return instantiate(cfg)(*args, **kwargs)
    except ConfigError:
        raise
    except Exception as error:  # an import, a type or a value error: the configuration's, not ours
        cause = error.__cause__ or error  # instantiate wraps the constructor's own error
        arguments = ", ".join(f"{k}={v!r}" for k, v in cfg.items() if not k.startswith("_"))
        raise ConfigError(f"{group}: {target}({arguments}) is refused: {first_line(cause)}") from None


class WarmupCosineFactor:
    """The factor :func:`warmup_cosine` multiplies optim.lr by at scheduler step ``s`` (a class, not a
    closure, so that the scheduler's state_dict keeps its plain settings).

    ``total_steps`` is the run's length by its step and epoch limits; ``budget_steps``, where a time
    budget is set, the steps that the time left is expected to allow (callbacks/time_budget.py). The
    cosine ends at the first of the two.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> None:
        self.warmup_steps, self.total_steps, self.min_lr_ratio = warmup_steps, total_steps, min_lr_ratio
        self.budget_steps: int | None = None

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        total = min(self.total_steps, self.budget_steps or self.total_steps)
        progress = min((step - self.warmup_steps) / max(total - self.warmup_steps, 1), 1.0)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to optim.lr over ``warmup_steps`` steps (lr/warmup_steps at the first), then cosine
    annealing to ``min_lr_ratio`` × optim.lr over the remaining ``total_steps - warmup_steps``.

    With ``warmup_steps=0`` it is CosineAnnealingLR(T_max=total_steps, eta_min=min_lr_ratio × lr).
    """
    if not (isinstance(warmup_steps, int) and warmup_steps >= 0):
        raise ConfigError(f"scheduler.warmup_steps={warmup_steps!r} is invalid: it must be an integer >= 0")
    if not 0 <= min_lr_ratio <= 1:
        raise ConfigError(f"scheduler.min_lr_ratio={min_lr_ratio!r} is invalid: it must be in [0, 1]")
    factor = WarmupCosineFactor(warmup_steps, total_steps, min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
