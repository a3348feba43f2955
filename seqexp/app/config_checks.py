"""Checks of the composed configuration that need no data and no torch.

They run before the heavy imports, so a mistyped value is reported in about a second, as one line that
names the key, the bad value and what is allowed.
"""

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seqexp.errors import ConfigError, first_line, is_int, is_number, one_of, require
from seqexp.sampling_options import as_text, check_sampling_options

CLIP_ALGORITHMS = ("norm", "value")
# What a conf/scheduler/*.yaml may tell Lightning about stepping its scheduler (see seqexp/optimization.py).
SCHEDULER_INTERVALS = ("step", "epoch")
LIGHTNING_SCHEDULER_KEYS = ("interval", "frequency", "monitor", "strict", "name")

# What Lightning's Trainer takes as precision (lightning_fabric.connector._PRECISION_INPUT, in its order),
# written out so that a mistyped one is refused without importing Lightning; tests/test_config_errors.py
# holds this list to Lightning's own. 16 and "16" are both valid: the aliases are strings.
TRAINER_PRECISIONS = (
    64, 32, 16,
    "transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
    "32-true", "64-true",
    "64", "32", "16", "bf16",
)  # fmt: skip


def _is_seed(value: Any) -> bool:
    return is_int(value) and 0 <= value < 2**32  # numpy's range, which Lightning seeds as well


def check_train_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first invalid value of a training configuration."""
    # Resolving first turns bad interpolations into one clear error instead of a later traceback.
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as error:  # any resolution failure is the configuration's, not ours
        raise ConfigError(f"the configuration does not resolve: {first_line(error)}") from None

    require("clip", cfg.clip, lambda v: v is None or (is_number(v) and v > 0), "a number > 0, or null")
    one_of("clip_algorithm", cfg.clip_algorithm, CLIP_ALGORITHMS)
    require("seq_length", cfg.seq_length, lambda v: is_int(v) and v >= 1, "an integer >= 1")
    require("seed", cfg.seed, _is_seed, "an integer from 0 to 2**32 - 1")
    require(
        "threads",
        cfg.get("threads"),
        lambda v: v is None or (is_int(v) and v >= 1),
        "an integer >= 1, or null",
    )
    require("compile", cfg.compile, lambda v: isinstance(v, bool), "true or false")
    require(
        "reuse_freed_memory",
        cfg.get("reuse_freed_memory", True),
        lambda v: isinstance(v, bool),
        "true or false",
    )
    require(
        "save_every_steps",
        cfg.save_every_steps,
        lambda v: v is None or (is_int(v) and v >= 1),
        "an integer >= 1, or null",
    )
    require(
        "save_every_minutes",
        cfg.save_every_minutes,
        lambda v: v is None or (is_number(v) and v > 0),
        "a number > 0, or null",
    )
    require(
        "divergence_factor",
        cfg.divergence_factor,
        lambda v: v is None or (is_number(v) and v > 1),
        "a number > 1, or null",
    )

    check_data_config(cfg.data)

    model = cfg.model
    require("model.hidden_size", model.hidden_size, lambda v: is_int(v) and v >= 1, "an integer >= 1")
    require(
        "model.num_layers", model.num_layers, lambda v: is_int(v) and 1 <= v <= MAX_LAYERS,
        f"an integer between 1 and {MAX_LAYERS}",
    )  # fmt: skip
    if "embedding_dim" in model:
        require("model.embedding_dim", model.embedding_dim, lambda v: is_int(v) and v >= 1, "an integer >= 1")
    # Only dropout is in every saved config: the others are absent from runs saved before they existed.
    for key in ("dropout", "input_dropout", "weight_dropout"):
        if key in model:
            require(f"model.{key}", model[key], lambda v: is_number(v) and 0 <= v < 1, "in [0, 1)")
    if "variational_dropout" in model:
        variational = model.variational_dropout
        require("model.variational_dropout", variational, lambda v: isinstance(v, bool), "true or false")

    # The keys every optimizer and scheduler shares; the options of one class are its constructor's to
    # judge (seqexp.optimization.check_optimization calls it before training).
    optim = cfg.optim
    require("optim.lr", optim.get("lr"), lambda v: is_number(v) and v > 0, "a number > 0")
    if "weight_decay" in optim:
        decay = optim.weight_decay
        require("optim.weight_decay", decay, lambda v: is_number(v) and v >= 0, "a number >= 0")
    lightning = cfg.scheduler.get("lightning") or {}
    for key in lightning:
        one_of("scheduler.lightning key", key, LIGHTNING_SCHEDULER_KEYS)
    if "interval" in lightning:
        one_of("scheduler.lightning.interval", lightning["interval"], SCHEDULER_INTERVALS)
    check_trainer_config(cfg.trainer)


def check_data_config(data: DictConfig) -> None:
    """Raise ConfigError for a value that every dataset takes (StreamDataModule's arguments and the split
    fractions); the options of one dataset are its constructor's to judge."""
    require(
        "data.batch_size",
        data.batch_size,
        lambda v: v is None or (is_int(v) and v >= 1),
        "an integer >= 1, or null to fit the shortest split",
    )
    if "seq_length" in data:  # ${seq_length} unless a preset or the command line sets it apart
        require("data.seq_length", data.seq_length, lambda v: is_int(v) and v >= 1, "an integer >= 1")
    if "eval_burn_in" in data:
        require(
            "data.eval_burn_in",
            data.eval_burn_in,
            lambda v: v is None or (is_int(v) and v >= 0),
            "an integer >= 0, or null",
        )
    for key in ("val_fraction", "test_fraction"):
        if key in data and not (key == "test_fraction" and data[key] == 0):
            require(f"data.{key}", data[key], lambda v: is_number(v) and 0 < v < 1, "between 0 and 1")
    held_out = data.get("val_fraction", 0) + data.get("test_fraction", 0)
    if held_out >= 1:
        raise ConfigError(
            f"data.val_fraction + data.test_fraction = {held_out:g} leaves no training data: keep it below 1"
        )


def check_sample_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first invalid value of a sampling configuration (conf/sample.yaml)."""
    if OmegaConf.is_missing(cfg, "ckpt") or not cfg.ckpt:
        raise ConfigError("ckpt is missing: pass ckpt=PATH, a checkpoint written by scripts/train.py")
    check_sampling_options(as_text(cfg.prime), cfg.length, cfg.top_k, cfg.temperature)
    require("seed", cfg.seed, is_int, "an integer")
    if cfg.out:
        out = Path(str(cfg.out)).expanduser()
        if out.is_dir():
            raise ConfigError(
                f"out={cfg.out!r} is a folder: give the path of a file to write, e.g. {out}/sample.txt"
            )
        if not out.resolve().parent.is_dir():
            raise ConfigError(
                f"out={cfg.out!r} is in a folder that does not exist: create it or choose another"
            )


# Deeper recurrent stacks do not train, and building one of 100000 layers takes longer than any run.
MAX_LAYERS = 64


def _positive_limit(value: Any) -> bool:
    """A Trainer limit as Lightning reads it: a fraction in (0, 1] or a number of batches >= 1."""
    if isinstance(value, float):
        return 0 < value <= 1
    return is_int(value) and value >= 1


def check_trainer_config(trainer: DictConfig) -> None:
    """Raise ConfigError for a Trainer value that would train nothing, forever, or crash mid-run, or a
    precision Lightning does not know.

    Only these values are checked here; the Trainer judges the rest itself after the heavy imports (its
    refusal becomes one line, see seqexp.tasks.train.build).
    """
    require(
        "trainer.precision",
        trainer.get("precision"),
        lambda v: v is None or any(v == p and type(v) is type(p) for p in TRAINER_PRECISIONS),
        f"one of {', '.join(dict.fromkeys(map(str, TRAINER_PRECISIONS)))}, or null",
    )
    epochs = trainer.get("max_epochs")
    require(
        "trainer.max_epochs", epochs, lambda v: v is None or v == -1 or (is_int(v) and v >= 1),
        "an integer >= 1, -1 (no limit, with trainer.max_steps) or null",
    )  # fmt: skip
    steps = trainer.get("max_steps", -1)
    require(
        "trainer.max_steps",
        steps,
        lambda v: is_int(v) and (v == -1 or v >= 1),
        "an integer >= 1, or -1 (no limit)",
    )
    if epochs == -1 and steps == -1:
        raise ConfigError(
            "trainer.max_epochs=-1 with trainer.max_steps=-1 would train forever: set one of them"
        )
    for key in ("limit_train_batches", "val_check_interval"):
        if key in trainer:
            require(
                f"trainer.{key}",
                trainer[key],
                _positive_limit,
                "a fraction in (0, 1] or a number of batches >= 1",
            )
    for key in ("log_every_n_steps", "num_nodes", "accumulate_grad_batches"):
        if key in trainer:
            require(f"trainer.{key}", trainer[key], lambda v: is_int(v) and v >= 1, "an integer >= 1")
    if trainer.get("check_val_every_n_epoch") is not None:
        require(
            "trainer.check_val_every_n_epoch", trainer.check_val_every_n_epoch,
            lambda v: is_int(v) and v >= 1, "an integer >= 1, or null",
        )  # fmt: skip
    devices = trainer.get("devices", "auto")
    require(
        "trainer.devices", devices, lambda v: not is_int(v) or v >= 1 or v == -1,
        "a number of devices >= 1, -1 (all of them), 'auto' or a list of device indices",
    )  # fmt: skip
