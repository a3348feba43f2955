"""What `reuse_freed_memory` buys: the same training run with it on and off, each in its own process.

The setting changes the C library's malloc for the whole process, so each run is a fresh
`scripts/train.py`; the runs alternate (on, off, on, off, ...). For each one: training tokens/s over its
last epoch (train/tokens_per_s, validation excluded), and from the kernel, for the whole process,
minor page faults, system time and peak resident size. The default run is
experiment=tinyshakespeare_cpu_fp32's model and batches on a generated corpus (no download), for a
fixed number of epochs instead of 10 minutes:

    python scripts/bench_host_memory.py
    python scripts/bench_host_memory.py --repeats 3 -o model=lstm model.hidden_size=256
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from harness import generated_corpus, run_train_script

from seqexp.report.runs import read_scalars

PRESET = ["experiment=tinyshakespeare_cpu_fp32", "data=text", "trainer.max_time=null", "test_after_fit=false"]


def run_once(overrides: list[str], out_dir: Path) -> dict[str, float]:
    overrides = [*overrides, f"hydra.run.dir={out_dir}"]
    log = out_dir.with_name(f"{out_dir.name}.log")  # beside the run: train.py wants a new folder
    code, usage = run_train_script(overrides, log)
    if code != 0:
        raise SystemExit(
            f"scripts/train.py {' '.join(overrides)} failed ({code}):\n{log.read_text()[-2000:]}"
        )
    scalars, error = read_scalars(out_dir)
    if error or "train/tokens_per_s" not in scalars:
        raise SystemExit(f"{out_dir} logged no train/tokens_per_s ({error})")
    return {
        "tokens/s": scalars["train/tokens_per_s"][-1].value,
        "minor faults": usage.ru_minflt,
        "system s": usage.ru_stime,
        "peak RSS MB": usage.ru_maxrss / 1024,  # Linux counts it in KiB
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run; the last one is timed")
    parser.add_argument(
        "--chars", type=int, default=700_000, help="generated corpus size (an epoch: 65 steps)"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("-o", "--overrides", nargs="*", default=[], help="extra Hydra overrides")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        corpus = generated_corpus(Path(tmp), args.chars)
        overrides = [*PRESET, f"data.path={corpus}", f"trainer.max_epochs={args.epochs}", *args.overrides]
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.repeats} runs each, alternating"
        )
        print(f"overrides: {' '.join(overrides)}")
        results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for repeat in range(args.repeats):
            for setting in (True, False):
                value = str(setting).lower()
                run = run_once(
                    [*overrides, f"reuse_freed_memory={value}"], Path(tmp) / f"run{repeat}_{value}"
                )
                results[setting].append(run)
        for setting, runs in results.items():
            cells = "  ".join(f"{key} {statistics.median(run[key] for run in runs):,.1f}" for key in runs[0])
            print(f"reuse_freed_memory={str(setting).lower():5}  median: {cells}")
            print(f"    runs tokens/s: {[round(run['tokens/s']) for run in runs]}")
        ratio = statistics.median(r["tokens/s"] for r in results[True]) / statistics.median(
            r["tokens/s"] for r in results[False]
        )
        print(f"tokens/s ratio on / off = {ratio:.3f}")


if __name__ == "__main__":
    main()
