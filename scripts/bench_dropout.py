"""What dropout costs a training step: none, per step (nn.Dropout), per window (model.variational_dropout),
and per window with the recurrent weights dropped as well (model.weight_dropout).

    python scripts/bench_dropout.py                                  # experiment=tinyshakespeare_cpu's model
    python scripts/bench_dropout.py --repeats 9 -o model.hidden_size=512 trainer.precision=32-true

The model is the composed config's (build_model), with its dropout probabilities; only the mask's shape
changes between the first three. The last adds weight dropout at the config's p, or at --weight-dropout
where the config has none. Each step is forward, cross-entropy, backward and the config's optimizer on one
window of random tokens, the state carried, under bf16 autocast where the config asks for it and the CPU
computes bf16 (seqexp/precision.py). The variants take turns within each repeat, and the median is
reported.
"""

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from harness import compose_config, timed
from omegaconf import OmegaConf

from seqexp.data.spec import DataSpec
from seqexp.models.sequence_model import build_model, detach_state
from seqexp.optimization import make_optimizer
from seqexp.precision import BF16_MIXED, cpu_precision
from seqexp.reference_loop import autocast, sequence_loss

NO_DROPOUT = {"dropout": 0.0, "input_dropout": 0.0, "weight_dropout": 0.0}


def variants(weight_dropout: float) -> dict[str, dict[str, Any]]:
    """Each variant's changes to the config's model options."""
    return {
        "no dropout": NO_DROPOUT,
        "per step (nn.Dropout)": {"variational_dropout": False, "weight_dropout": 0.0},
        "per window (variational)": {"variational_dropout": True, "weight_dropout": 0.0},
        f"per window, weights {weight_dropout:g}": {
            "variational_dropout": True,
            "weight_dropout": weight_dropout,
        },
    }


def make_step(
    options: dict[str, Any], optim: dict[str, Any], vocab: int, batch: int, seq_length: int, precision: object
) -> Callable[[], None]:
    model = build_model(options, DataSpec(input_size=vocab, output_size=vocab, tokens=True)).train()
    optimizer = make_optimizer(optim, model.parameters())
    x, y = torch.randint(vocab, (batch, seq_length)), torch.randint(vocab, (batch, seq_length))
    state = None

    def step() -> None:
        nonlocal state
        with autocast(precision, torch.device("cpu")):
            logits, state = model(x, state)
            loss = sequence_loss(logits, y, tokens=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        state = detach_state(state)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant (default 5)")
    parser.add_argument("--vocab", type=int, default=65, help="tokens (default 65, tinyshakespeare's)")
    parser.add_argument(
        "--weight-dropout", type=float, default=0.2, help="the last variant's p where the config's is 0 (0.2)"
    )
    parser.add_argument("-o", "--overrides", nargs="*", default=[], help="Hydra overrides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config(["experiment=tinyshakespeare_cpu", *args.overrides], Path(out))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    precision = cpu_precision(cfg.trainer.precision)  # fp32, saying so, where the CPU has no bf16
    bf16 = str(precision) in BF16_MIXED
    options = OmegaConf.to_container(cfg.model, resolve=True)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    assert isinstance(options, dict) and isinstance(optim, dict)
    compared = variants(options["weight_dropout"] or args.weight_dropout)
    times: dict[str, list[float]] = {name: [] for name in compared}
    steps = {}
    for name, changes in compared.items():
        step = make_step(options | changes, optim, args.vocab, cfg.data.batch_size, cfg.seq_length, precision)
        step()  # warm-up: first-call allocations and kernel selection
        steps[name] = timed(step, times[name])
    for _ in range(args.repeats):
        for step in steps.values():
            step()
    model = cfg.model
    print(
        f"{model.cell} {model.num_layers} x {model.hidden_size}, embedding {model.embedding_dim}, "
        f"dropout {model.dropout}, input_dropout {model.input_dropout}, batch {cfg.data.batch_size} x "
        f"{cfg.seq_length}, {cfg.optim._target_}, {'bf16 autocast' if bf16 else 'fp32'}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    base = statistics.median(times["no dropout"])
    tokens = cfg.data.batch_size * cfg.seq_length
    for name, seconds in times.items():
        median = statistics.median(seconds)
        rate = tokens / median
        print(f"  {name:<28} {median * 1000:7.1f} ms/step  {rate:9,.0f} tokens/s  {median / base:5.2f}x")


if __name__ == "__main__":
    main()
