"""Big text corpora: how fast a corpus is prepared, how soon training starts, how much memory it takes.

For each size a mixed-script corpus (Latin with accents, Greek, Cyrillic, CJK: a vocabulary of about a
thousand characters, stored as uint16) is generated in a temporary folder, then for each tokenizer
(``--tokenizers``: char, word, bpe; ``--vocab-size`` for word and bpe):

- its token file is prepared in this process: the preparation time (for word and bpe, training the
  tokenizer on the training split included) and MB/s of source text;
- the token file is deleted and ``scripts/train.py data=text ... trainer.max_steps=1`` runs as a child
  process: the cold run, which prepares the token file again;
- the same run is repeated (``--warm-runs`` times, the sizes and tokenizers interleaved so that they are
  measured side by side): the warm runs, which reuse the token file.

For each run it reports the time from starting the process to the first training step (a callback
records when it begins) and the peak RSS of the process (``ru_maxrss`` from ``os.wait4``). The model is
the default RNN with one-hot inputs; validation is cut to one window. All files are deleted at the end.

    python scripts/bench_data.py                        # 1 MB, 100 MB and 1 GB (needs about 4 GB of disk)
    python scripts/bench_data.py --sizes-mb 1 100       # the smaller ones only
    python scripts/bench_data.py --dir /big/disk        # where the temporary folder goes
    python scripts/bench_data.py --tokenizers bpe --vocab-size 4096   # one tokenizer, another size
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from operator import itemgetter
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from harness import REPO, run_train_script

from seqexp.data.text import TextDataModule
from seqexp.data.token_file import CHUNK_BYTES, prepared_tokens, token_paths
from seqexp.data.tokenizer import TOKENIZERS

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZàáâäçèéêëîïñóôöùúûüœ",
    "".join(map(chr, range(0x3B1, 0x3CA))),  # Greek
    "".join(map(chr, range(0x430, 0x450))),  # Cyrillic
    "".join(map(chr, range(0x4E00, 0x4E00 + 800))),  # CJK ideographs
]
SEPARATORS = [b" "] * 12 + [b", ", b". ", b".\n", b"\n\n"]


class FirstStepClock(pl.Callback):
    """Writes the wall-clock time at which the first training step begins to ``out``."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.out.exists():
            self.out.write_text(repr(time.time()))


def generate_corpus(path: Path, size_bytes: int, seed: int = 0) -> None:
    """About ``size_bytes`` of words, each followed by a space or punctuation, drawn at random from a
    few thousand words in several scripts."""
    rng = np.random.default_rng(seed)
    words = [b"The"]  # the default text-sample prime must be in the vocabulary
    for _ in range(4000):
        alphabet = list(ALPHABETS[rng.integers(len(ALPHABETS))])
        words.append("".join(rng.choice(alphabet, rng.integers(1, 8))).encode())
    pieces = [word + separator for word in words for separator in SEPARATORS]
    written = 0
    with path.open("wb") as file:
        while written < size_bytes:
            block = b"".join(itemgetter(*rng.integers(len(pieces), size=50_000).tolist())(pieces))
            block = block[: size_bytes - written]
            # The last cut may split a character: keep only whole ones.
            block = block[: len(block.decode("utf-8", errors="ignore").encode())]
            if not block:
                break
            file.write(block)
            written += len(block)


def run_to_first_step(
    corpus: Path, tokenizer: list[str], data_dir: Path, work: Path, name: str
) -> tuple[float, float]:
    """Run train.py for one step as a child: seconds to the first step, peak RSS in MB. ``tokenizer``:
    its data.tokenizer and data.vocab_size overrides."""
    clock = work / f"{name}.first-step"
    overrides = [
        "data=text",
        f"data.path={corpus}",
        *tokenizer,
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={work / name}",
        "trainer.max_steps=1",
        "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false",
        "test_after_fit=false",
        "+callbacks.first_step._target_=bench_data.FirstStepClock",
        f"+callbacks.first_step.out={clock}",
    ]
    pythonpath = os.pathsep.join(
        filter(None, [str(REPO), str(REPO / "scripts"), os.environ.get("PYTHONPATH")])
    )
    log = work / f"{name}.log"
    start = time.time()
    code, usage = run_train_script(overrides, log, env={**os.environ, "PYTHONPATH": pythonpath})
    if code != 0 or not clock.is_file():
        sys.exit(f"{name} failed (exit {code}); its output is in {log}:\n{log.read_text()[-3000:]}")
    seconds = float(clock.read_text()) - start
    clock.unlink()
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[1, 100, 1000], help="corpus sizes in MB")
    parser.add_argument("--warm-runs", type=int, default=3, help="warm runs per size (median reported)")
    parser.add_argument("--dir", default=None, help="where the temporary folder goes (default: the system's)")
    parser.add_argument("--tokenizers", nargs="+", choices=TOKENIZERS, default=list(TOKENIZERS))
    parser.add_argument("--vocab-size", type=int, default=1024, help="data.vocab_size of word and bpe")
    args = parser.parse_args()

    print(
        f"python {platform.python_version()}, torch {torch.__version__}, pytorch-lightning {pl.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, preparation chunk {CHUNK_BYTES >> 20} MiB"
    )
    print(
        "child runs: train.py data=text trainer.max_steps=1 trainer.limit_val_batches=1 (default model); "
        f"word and bpe: data.vocab_size={args.vocab_size}"
    )
    rows: dict[tuple[int, str], dict[str, object]] = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench_data.") as tmp:
        work = Path(tmp)
        corpora = {}
        for size_mb in args.sizes_mb:
            corpus, data_dir = work / f"corpus-{size_mb}MB.txt", work / "data"
            generate_corpus(corpus, size_mb * 1_000_000)
            corpora[size_mb] = corpus
            for kind in args.tokenizers:
                # The tokenization a run of data=text's default fractions asks for.
                data = TextDataModule(
                    data_dir=str(data_dir), path=str(corpus), tokenizer=kind, vocab_size=args.vocab_size,
                    val_fraction=0.1, test_fraction=0.0, batch_size=None, seq_length=1, eval_burn_in=None,
                )  # fmt: skip
                start = time.perf_counter()
                prepared = prepared_tokens(corpus, data_dir, data.tokenization())
                seconds = time.perf_counter() - start
                row = rows[size_mb, kind] = {
                    "tokens": len(prepared.tokens),
                    "vocabulary": len(prepared.tokenizer),
                    "dtype": prepared.tokens.dtype.name,
                    "prepare_s": seconds,
                    "mb_per_s": corpus.stat().st_size / 1e6 / seconds,
                }
                del prepared
                for path in token_paths(corpus, data_dir, data.tokenization()):
                    path.unlink()
                name = f"{size_mb}MB-{kind}-cold"
                row["cold_s"], row["cold_rss"] = run_to_first_step(
                    corpus, overrides(kind, args), data_dir, work, name
                )
                print(
                    f"{size_mb} MB, {kind}: prepared in {seconds:.1f} s; cold run {row['cold_s']:.1f} s",
                    flush=True,
                )
        warm: dict[tuple[int, str], list[tuple[float, float]]] = {key: [] for key in rows}
        for repeat in range(args.warm_runs):
            for size_mb, kind in rows:
                name = f"{size_mb}MB-{kind}-warm{repeat}"
                warm[size_mb, kind].append(
                    run_to_first_step(corpora[size_mb], overrides(kind, args), work / "data", work, name)
                )
        for key, runs in warm.items():
            rows[key]["warm_s"] = statistics.median(s for s, _ in runs)
            rows[key]["warm_rss"] = max(rss for _, rss in runs)

    print(
        "\n| corpus | tokenizer | tokens | vocabulary | dtype | preparation | MB/s | first step, cold | "
        "first step, warm | peak RSS, cold | peak RSS, warm |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (size_mb, kind), row in rows.items():
        print(
            f"| {size_mb:,} MB | {kind} | {row['tokens']:,} | {row['vocabulary']:,} | {row['dtype']} "
            f"| {row['prepare_s']:.2f} s | {row['mb_per_s']:.1f} | {row['cold_s']:.1f} s "
            f"| {row['warm_s']:.1f} s | {row['cold_rss']:,.0f} MB | {row['warm_rss']:,.0f} MB |"
        )
    smallest, largest = min(args.sizes_mb), max(args.sizes_mb)
    if largest != smallest:
        for kind in args.tokenizers:
            ratio = rows[largest, kind]["warm_s"] / rows[smallest, kind]["warm_s"]
            print(f"\n{kind}: warm time to first step, {largest:,} MB / {smallest:,} MB: {ratio:.2f}x")


def overrides(kind: str, args: argparse.Namespace) -> list[str]:
    return [f"data.tokenizer={kind}", f"data.vocab_size={args.vocab_size}"]


if __name__ == "__main__":
    main()
