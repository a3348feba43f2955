"""Characters per second of the sampling loop that scripts/sample.py runs (seqexp.sampling.generate).

The model is the lecture notes' char-RNN shape with random weights (speed does not depend on them):
`python scripts/bench_sample.py [--device cpu] [--threads N] [--length 2000]`.
"""

import argparse
import statistics
import time

import torch

from seqexp.models.sequence_model import SequenceModel
from seqexp.sampling import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for torch")
    parser.add_argument("--cell", default="torch.nn.LSTM")
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=65, help="vocabulary size (tinyshakespeare has 65)")
    parser.add_argument("--prime-length", type=int, default=13, help='len("And even said")')
    parser.add_argument("--length", type=int, default=2000, help="characters sampled per repeat")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = SequenceModel(
        args.cell,
        args.vocab,
        args.vocab,
        tokens=True,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        dropout=0.0,
        input_dropout=0.0,
        variational_dropout=False,
        weight_dropout=0.0,
        encoder="onehot",
        embedding_dim=64,  # unused: the inputs are one-hot
        remember_bias=None,
    )
    model = model.to(device).eval()
    prime = torch.randint(args.vocab, (args.prime_length,), device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    print(
        f"config: {args.cell} {args.num_layers}x{args.hidden_size}, one-hot vocabulary {args.vocab}, "
        f"prime {args.prime_length} chars, {args.length} chars per repeat, top_k={args.top_k}, "
        f"temperature={args.temperature}, device={device}, threads={torch.get_num_threads()}, "
        f"torch {torch.__version__}"
    )

    def run(length: int) -> float:
        start = time.perf_counter()
        generate(model, prime, length, args.top_k, args.temperature, generator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    run(50)  # warm-up: first calls allocate and pick kernels
    rates = [args.length / run(args.length) for _ in range(args.repeats)]
    print(
        f"{statistics.median(rates):,.0f} characters/s (median of {args.repeats}; "
        f"min {min(rates):,.0f}, max {max(rates):,.0f})"
    )


if __name__ == "__main__":
    main()
