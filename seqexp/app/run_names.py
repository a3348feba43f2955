"""Run folder names that say what was chosen, so TensorBoard's run list reads at a glance.

A single run is ``<time>_<model>_<data>[_<tokenizer>][_<experiment>]`` under its date folder (the
tokenizer of a word or bpe corpus with its size, ``bpe512``; characters say nothing); a multirun job is
``<job number>_<its overrides>`` (Hydra's ``override_dirname``), with long floats shortened (an Optuna
trial's ``optim.lr=0.0031234567891`` becomes ``optim.lr=0.003123``) and path separators replaced.
conf/hydra/default.yaml uses these as OmegaConf resolvers; the entry points register them.
"""

import re
import sys

from omegaconf import OmegaConf

MAX_NAME = 120  # characters: folder names stay well under file-system limits and fit a TensorBoard row
_LONG_FLOAT = re.compile(r"-?\d+\.\d{5,}(?:e-?\d+)?")


def run_name(*choices: object) -> str:
    """The chosen options joined by ``_``, the unchosen (null) left out: ``gru_shakespeare``."""
    return "_".join(str(c).replace("/", "-") for c in choices if c not in (None, "", "null", "None"))


def tokens_name(tokenizer: object, vocab_size: object) -> str | None:
    """``bpe512``, ``word2000``: a word or bpe corpus's tokenizer and size; None (left out) for characters,
    the default, and for data that is not text."""
    return None if tokenizer in (None, "char") else f"{tokenizer}{vocab_size}"


def readable_overrides(override_dirname: str) -> str:
    """Hydra's override_dirname without the overrides every job shares, long floats shortened, ``/``
    replaced and the length capped.

    An override typed on the command line exactly as the job got it (``data.n_points=600``, not the
    sweep ``model=rnn,gru``) is the same for every job and names none of them. The command line is this
    process's: jobs that a launcher runs in other processes (joblib) keep every override in the name.
    """
    shared = {arg.lower() for arg in sys.argv[1:]}  # Hydra writes false as False in override_dirname
    varying = [item for item in override_dirname.split(",") if item.lower() not in shared]
    name = _LONG_FLOAT.sub(lambda m: f"{float(m.group()):.4g}", ",".join(varying)).replace("/", "-")
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 3] + "..."


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("seqexp.run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("seqexp.tokens", tokens_name, replace=True)
    OmegaConf.register_new_resolver("seqexp.readable", readable_overrides, replace=True)
