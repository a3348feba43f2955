"""What the validation diagnostics cost: the gradient-flow callback and the fit/forecast figure, as a
share of the wall time of a whole training run (validation, logging and checkpoints included).

Each run is the train task as train.py runs it; the two callbacks' hooks are timed in place:

    python scripts/bench_diagnostics.py                          # the default run and experiment=echo
    python scripts/bench_diagnostics.py --preset echo -o trainer.max_steps=500
"""

import argparse
import tempfile
from pathlib import Path

from harness import FitTimer, compose_config, timed

from seqexp.callbacks.grad_flow import GradientFlow
from seqexp.callbacks.series_fit import SeriesFitPlot
from seqexp.tasks.train import build

PRESETS = {"default": [], "echo": ["experiment=echo"]}


def measure(overrides: list[str], out_dir: Path) -> dict[str, float]:
    datamodule, module, trainer = build(compose_config(overrides, out_dir))
    spent = {GradientFlow: [], SeriesFitPlot: []}
    for callback in trainer.callbacks:
        if type(callback) in spent:
            callback.on_validation_end = timed(callback.on_validation_end, spent[type(callback)])
    timer = FitTimer()
    trainer.callbacks.append(timer)
    trainer.fit(module, datamodule=datamodule)
    return {
        "fit": timer.seconds,
        "grad_flow": sum(spent[GradientFlow]),
        "grad_flow_calls": len(spent[GradientFlow]),
        "fit_and_forecast_figure": sum(spent[SeriesFitPlot]),
        "figure_calls": len(spent[SeriesFitPlot]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=[*PRESETS, "all"], default="all")
    parser.add_argument("-o", "--overrides", nargs="*", default=[], help="extra Hydra overrides")
    args = parser.parse_args()
    presets = PRESETS if args.preset == "all" else {args.preset: PRESETS[args.preset]}
    with tempfile.TemporaryDirectory() as tmp:
        for name, preset in presets.items():
            overrides = [*preset, *args.overrides, "trainer.enable_progress_bar=false"]
            result = measure(overrides, Path(tmp) / name)
            fit = result["fit"]
            print(f"[{name}] overrides: {' '.join(overrides) or '(none)'}")
            print(f"  fit wall time        {fit:8.2f} s")
            for key, calls in (("grad_flow", "grad_flow_calls"), ("fit_and_forecast_figure", "figure_calls")):
                print(
                    f"  {key:<24} {result[key]:6.2f} s in {result[calls]} call(s) = "
                    f"{100 * result[key] / fit:.1f} % of the fit"
                )


if __name__ == "__main__":
    main()
