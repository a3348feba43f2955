"""Throughput of the complete seqexp training loop against the notes' bare PyTorch loop.

Both loops train the same model on the same batches with the same optimizer, schedule and clipping, and
run a validation pass at the end of each epoch. The bare loop is seqexp/reference_loop.py (which the tests
show trains exactly like seqexp); seqexp runs as train.py would (Lightning, logging, clipping,
checkpointing as configured). Each precision is timed in both loops (fp32, and bf16 autocast where the
CPU computes bf16: seqexp/precision.py). Runs alternate, and the median of the repeats is reported:

    python scripts/bench_train.py                      # the sine and char presets
    python scripts/bench_train.py --preset char --epochs 1 --repeats 3
    python scripts/bench_train.py --preset tinyshakespeare --max-steps 30 --precision 32-true bf16-mixed
    python scripts/bench_train.py --preset sine -o model=lstm trainer=gpu   # extra Hydra overrides
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from harness import FitTimer, compose_config, generated_corpus
from omegaconf import OmegaConf

from seqexp.precision import cpu_has_bf16
from seqexp.reference_loop import reference_fit
from seqexp.tasks.train import build

PRESETS = {
    # The notes' sine notebook, for several epochs so that there is something to time.
    "sine": ["experiment=sine_seed"],
    # A char model: 2 x 256 LSTM, batch 32, seq_length 100 on a generated 200k-character corpus.
    "char": [
        "data=text",
        "model=lstm",
        "model.hidden_size=256",
        "model.num_layers=2",
        "data.batch_size=32",
        "seq_length=100",
        "optim.lr=0.002",
    ],
    # experiment=tinyshakespeare_cpu_fp32's shape (GRU 1 x 512 on embeddings, batch 64 x 150) on the
    # generated corpus, by steps rather than its time budget; --precision sets the precision.
    "tinyshakespeare": ["experiment=tinyshakespeare_cpu_fp32", "data=text", "trainer.max_time=null"],
}
TEXT_PRESETS = ("char", "tinyshakespeare")


def seqexp_tokens_per_second(cfg) -> tuple[float, int]:
    datamodule, module, trainer = build(cfg)
    timer = FitTimer()
    trainer.callbacks.append(timer)
    trainer.fit(module, datamodule=datamodule)
    tokens = trainer.global_step * datamodule.batch_size * datamodule.seq_length * trainer.world_size
    return tokens / timer.seconds, trainer.global_step


def bare_tokens_per_second(cfg, device: torch.device) -> tuple[float, int]:
    """The notes' loop, seqexp/reference_loop.py, on the same model, batches, optimizer and clipping.

    Always eager (compile=false), so ``-o compile=true`` measures compiling against the plain baseline.
    """
    # The same seed, hence the same initial weights and batches as the seqexp run.
    datamodule, module, _ = build(OmegaConf.merge(cfg, {"compile": False}))
    start = time.perf_counter()
    run = reference_fit(cfg, module.model, datamodule, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    tokens = run.steps * datamodule.batch_size * datamodule.seq_length
    return tokens / (time.perf_counter() - start), run.steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=[*PRESETS, "both"], default="both", help="both: sine and char")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 8 sine, 1 char)")
    parser.add_argument("--max-steps", type=int, default=-1, help="cap on optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["32-true", "bf16-mixed"] if cpu_has_bf16() else ["32-true"],
        help="trainer.precision values to time (default: 32-true, and bf16-mixed where the CPU has bf16)",
    )
    parser.add_argument("-o", "--overrides", nargs="*", default=[], help="extra Hydra overrides")
    args = parser.parse_args()

    presets = ["sine", "char"] if args.preset == "both" else [args.preset]
    print(f"torch {torch.__version__}, pytorch-lightning {pl.__version__}, threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        corpus = generated_corpus(tmp_path)
        for preset in presets:
            epochs = args.epochs or (8 if preset == "sine" else 1)
            length = [f"trainer.max_epochs={epochs}", f"trainer.max_steps={args.max_steps}"]
            overrides = [*PRESETS[preset], *length]
            if preset in TEXT_PRESETS:
                overrides.append(f"data.path={corpus}")
            overrides += args.overrides
            configs = {
                precision: compose_config([*overrides, f"trainer.precision={precision}"], tmp_path / preset)
                for precision in args.precision
            }
            cfg = next(iter(configs.values()))
            device = torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")
            print(f"\n[{preset}] overrides: {' '.join(overrides)}")
            model = cfg.model
            print(f"[{preset}] device {device}, {model.cell} {model.num_layers}x{model.hidden_size}")
            ours: dict[str, list[float]] = {precision: [] for precision in configs}
            bare: dict[str, list[float]] = {precision: [] for precision in configs}
            for _ in range(args.repeats):  # the precisions alternate too, so they share the machine's mood
                for precision, cfg in configs.items():
                    rate, bare_steps = bare_tokens_per_second(cfg, device)
                    bare[precision].append(rate)
                    rate, our_steps = seqexp_tokens_per_second(cfg)
                    ours[precision].append(rate)
                    assert our_steps == bare_steps, (our_steps, bare_steps)
            print(f"[{preset}] {our_steps} steps per run, {args.repeats} runs each (median tokens/s)")
            for precision in configs:
                for name, rates in (("bare loop", bare[precision]), ("seqexp", ours[precision])):
                    runs = [round(r) for r in rates]
                    median = statistics.median(rates)
                    print(f"[{preset}] {precision:10} {name:9} {median:12,.0f} tokens/s   runs: {runs}")
                ratio = statistics.median(ours[precision]) / statistics.median(bare[precision])
                print(f"[{preset}] {precision:10} ratio seqexp / bare = {ratio:.3f}")
            if len(configs) > 1:
                first, *others = configs
                for precision in others:
                    speedup = statistics.median(ours[precision]) / statistics.median(ours[first])
                    print(f"[{preset}] seqexp {precision} / {first} = {speedup:.2f}x")


if __name__ == "__main__":
    main()
