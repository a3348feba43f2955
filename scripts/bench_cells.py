"""Time one training step (forward, backward, Adam step) of each recurrent core, relative to nn.LSTM.

    python scripts/bench_cells.py                          # both shapes, on cuda if there is one
    python scripts/bench_cells.py --shape seed --repeats 9

The cells take turns within each repeat, so a load that comes and goes on the machine hits all of them
alike; the table shows the median and the fastest of the repeats.
"""

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from seqexp.models.peephole import PeepholeLSTM

# name: (input_size, hidden_size, num_layers, batch, seq_length, one-hot input)
SHAPES = {
    "seed": (65, 512, 2, 128, 100, True),  # the lecture notes' char model
    "small": (1, 32, 1, 8, 20, False),  # the sine notebook's size
}
CELLS: dict[str, Callable[..., nn.Module]] = {
    "nn.RNN": nn.RNN,
    "nn.LSTM": nn.LSTM,
    "nn.GRU": nn.GRU,
    "peephole diagonal": functools.partial(PeepholeLSTM, peephole="diagonal"),
    "peephole full": functools.partial(PeepholeLSTM, peephole="full"),
}


def make_step(cell: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-3)

    def step() -> None:
        out, _ = cell(x)
        out.square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def bench_shape(name: str, device: torch.device, repeats: int, warmup: int) -> None:
    input_size, hidden, layers, batch, steps, onehot = SHAPES[name]
    torch.manual_seed(0)
    if onehot:
        x = nn.functional.one_hot(torch.randint(input_size, (batch, steps)), input_size).float()
    else:
        x = torch.randn(batch, steps, input_size)
    x = x.to(device)
    runs = {
        cell_name: make_step(make(input_size, hidden, num_layers=layers, batch_first=True).to(device), x)
        for cell_name, make in CELLS.items()
    }
    times: dict[str, list[float]] = {cell_name: [] for cell_name in runs}
    for repeat in range(warmup + repeats):
        for cell_name, step in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if repeat >= warmup:
                times[cell_name].append(time.perf_counter() - start)

    print(f"\nshape {name}: input {input_size}, {layers} x {hidden} hidden, batch {batch}, seq {steps}")
    print(f"{'cell':<20}{'median ms':>12}{'min ms':>12}{'median/LSTM':>14}{'min/LSTM':>12}")
    lstm = times["nn.LSTM"]
    for cell_name, ts in times.items():
        median, fastest = statistics.median(ts), min(ts)
        ratios = f"{median / statistics.median(lstm):>14.2f}{fastest / min(lstm):>12.2f}"
        print(f"{cell_name:<20}{median * 1e3:>12.2f}{fastest * 1e3:>12.2f}{ratios}")


def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--shape", choices=[*SHAPES, "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per cell (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per cell first (default 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    described = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {device} ({described}), {torch.get_num_threads()} CPU threads")
    print(f"per cell: {args.warmup} warm-up + {args.repeats} timed training steps (forward, backward, Adam)")
    for name in SHAPES if args.shape == "both" else [args.shape]:
        bench_shape(name, device, args.repeats, args.warmup)


if __name__ == "__main__":
    main()
