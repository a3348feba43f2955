"""Contract 2 (docs/design.md §4): encoder -> input dropout -> recurrent core -> dropout -> Linear head."""

import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from seqexp.data.spec import DataSpec
from seqexp.errors import ConfigError, first_line

# A recurrent state: a tensor (nn.RNN, nn.GRU), a tuple of tensors (nn.LSTM), or None for zeros.
State = torch.Tensor | tuple[torch.Tensor, ...] | None

ENCODERS = ("onehot", "embedding")
# Cells with a gate that keeps the old state (LSTM: forget, GRU: update); in all three it is the second
# block of hidden_size rows of the biases (LSTM gate order i, f, g, o; GRU r, z, n).
REMEMBER_GATE_CELLS = ("torch.nn.LSTM", "torch.nn.GRU", "seqexp.models.peephole.PeepholeLSTM")


def map_state(function: Callable[[torch.Tensor], torch.Tensor], state: State) -> State:
    """``function`` applied to each tensor of a state, keeping its shape (None stays None): the one walk
    over the three kinds of state, for detaching, moving, gathering and slicing them."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return function(state)
    return tuple(function(part) for part in state)


def detach_state(state: State) -> State:
    """The same values cut from the graph, so backpropagation stops at the window boundary."""
    return map_state(torch.Tensor.detach, state)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode (no dropout) for the block, then back in the mode it was in, so that a
    figure or a sample taken in the middle of training leaves training as it was."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def import_cell(path: str) -> type[nn.Module]:
    """The class at ``path`` ("package.module.Class"), named in conf/model/*.yaml as ``cell``."""
    module_name, _, class_name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(
            f"model.cell={path!r} cannot be imported: give the import path of a class with the nn.LSTM "
            "calling convention, e.g. torch.nn.LSTM"
        ) from None


class OneHot(nn.Module):
    """Token ids -> one-hot float vectors, the input encoding of the lecture notes."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(tokens, self.vocab_size).float()


class WindowDropout(nn.Dropout):
    """Dropout of ``(batch, time, features)`` with one mask per row of the window, shared by all its time
    steps: variational dropout (Gal & Ghahramani 2016; AWD-LSTM's locked dropout). A unit dropped from
    one row is dropped for the whole window, and the mask costs ``time`` times fewer random numbers than
    nn.Dropout's, which on a CPU were about a fifth of a bf16 training step (scripts/bench_dropout.py)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        # Scaling the small mask, not the product, keeps the window's tensor to one pass.
        keep = x.new_empty(x.shape[0], 1, *x.shape[2:]).bernoulli_(1 - self.p).div_(1 - self.p)
        return x * keep


class SequenceModel(nn.Module):
    """``encoder -> input dropout -> core -> dropout -> head``; ``forward(x, state) -> (output, state)``.

    ``x`` is ``(batch, time, input_size)`` floats when ``tokens`` is false, else ``(batch, time)`` ids.
    The keyword arguments are conf/model's keys and have no defaults here: theirs are in conf/_model.yaml
    and conf/train.yaml, one home each. Extra keyword arguments go to the cell's constructor (e.g.
    ``nonlinearity`` for nn.RNN).
    ``remember_bias``: the initial bias of the gate that keeps the state (LSTM forget gate, GRU update
    gate; Jozefowicz et al. 2015), so that at the start the state, and the gradient, survive many steps
    rather than halving at each; None keeps torch's initialisation. nn.RNN has no such gate: nothing to set.
    A mapping sets it by the cell's class name ({"LSTM": 3.0, "GRU": 1.0}; a cell not named keeps torch's
    initialisation), for comparisons of cells whose gates differ: the GRU's update gate also scales what
    is written, 1 - z, so a bias that suits an LSTM's forget gate leaves a GRU writing 5 % at a step.
    ``input_dropout`` drops the core's input and ``dropout`` the links between layers and to the head:
    together every non-recurrent connection, the recipe of Zaremba et al. (2014); the recurrent state
    itself is never dropped, so it carries across windows as it is. ``variational_dropout`` draws those
    two masks once per row and window instead of at every time step (WindowDropout); the dropout between
    a multi-layer cell's layers is the cell's own, per step.
    ``weight_dropout`` drops the core's hidden-to-hidden weights (DropConnect; AWD-LSTM's WeightDrop), one
    mask per window shared by every row: the one dropout that reaches the recurrence, and it leaves the
    state carried across windows untouched.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        output_size: int,
        tokens: bool,
        *,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        input_dropout: float,
        variational_dropout: bool,
        weight_dropout: float,
        encoder: str,
        embedding_dim: int,
        remember_bias: float | dict[str, float] | None,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        if tokens:
            if encoder not in ENCODERS:
                raise ConfigError(f"model.encoder={encoder!r} is not one of: {', '.join(ENCODERS)}")
            if encoder == "embedding":
                self.encoder: nn.Module = nn.Embedding(input_size, embedding_dim)
                core_input = embedding_dim
            else:
                self.encoder = OneHot(input_size)
                core_input = input_size
        else:
            self.encoder = nn.Identity()
            core_input = input_size
        # nn.LSTM warns about (and ignores) dropout with a single layer; pass it only where it acts.
        core_dropout = dropout if num_layers > 1 else 0.0
        cell_class = import_cell(cell)
        try:
            self.core = cell_class(
                input_size=core_input,
                hidden_size=hidden_size,
                num_layers=num_layers,
                dropout=core_dropout,
                batch_first=True,
                **cell_options,
            )
        except (TypeError, ValueError) as error:
            if isinstance(error, ConfigError):
                raise
            # torch's cells refuse bad options with a bare message (e.g. "Unknown nonlinearity 'x'").
            options = ", ".join(f"model.{key}={value!r}" for key, value in cell_options.items()) or "none"
            raise ConfigError(
                f"model.cell={cell} refused its options ({first_line(error)}); options given: {options}"
            ) from None
        if isinstance(remember_bias, Mapping):
            remember_bias = remember_bias_of(cell, remember_bias)
        if remember_bias is not None:
            init_remember_bias(self.core, cell, hidden_size, remember_bias)
        self.weight_dropout = weight_dropout
        self.recurrent_weights = [
            name for name, _ in self.core.named_parameters() if name.startswith("weight_hh")
        ]
        if weight_dropout > 0 and not self.recurrent_weights:
            raise ConfigError(
                f"model.weight_dropout={weight_dropout} drops the weight_hh_l* parameters, and "
                f"model.cell={cell} has none: set model.weight_dropout=0"
            )
        dropout_class = WindowDropout if variational_dropout else nn.Dropout
        self.input_dropout = dropout_class(input_dropout)
        self.dropout = dropout_class(dropout)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        inputs = self.input_dropout(self.encoder(x))
        if self.training and self.weight_dropout > 0:
            features, state = functional_call(self.core, self.dropped_recurrent_weights(), (inputs, state))
        else:
            features, state = self.core(inputs, state)
        return self.head(self.dropout(features)), state

    def dropped_recurrent_weights(self) -> dict[str, torch.Tensor]:
        """The core's hidden-to-hidden weights with ``weight_dropout`` applied, a fresh mask each call."""
        dropped = {}
        for name in self.recurrent_weights:
            weight: torch.Tensor = self.core.get_parameter(name)
            device = weight.device.type
            if torch.is_autocast_enabled(device):
                # Autocast caches the casts of parameters only: a dropped fp32 weight would be cast again at
                # every time step, which made a bf16 CPU step 1.8 times as long.
                weight = weight.to(torch.get_autocast_dtype(device))
            dropped[name] = weight * dropconnect_mask(weight, self.weight_dropout)
        return dropped


# One 64-bit random draw gives four 16-bit levels: a quarter of the draws of nn.functional.dropout, whose
# bernoulli_ takes one per entry. For the 2304 x 576 recurrent weights of experiment=tinyshakespeare_cpu's
# LSTM on two CPU threads, bernoulli_ made the training step 1.14 times as long as without dropout; with
# these levels it is within the noise (0.97; python scripts/bench_dropout.py --repeats 9).
LEVELS = 1 << 16


def dropconnect_mask(weight: torch.Tensor, p: float) -> torch.Tensor:
    """A mask like ``weight`` (its shape, dtype and device) that is 0 with probability ``p`` (to the
    nearest 1/65536) and 1 / (1 - p) elsewhere, drawn from torch's default generator, so seeding and
    resuming cover it as they cover every other draw."""
    count = weight.numel()
    draws = torch.randint(
        torch.iinfo(torch.int64).min,
        torch.iinfo(torch.int64).max,
        ((count + 3) // 4,),
        dtype=torch.int64,
        device=weight.device,
    )
    levels = draws.view(torch.int16)[:count].view(weight.shape)  # uniform over -32768 ... 32767
    dropped_levels = round(p * LEVELS)
    keep = levels >= dropped_levels - LEVELS // 2
    return keep.to(weight.dtype).mul_(LEVELS / (LEVELS - dropped_levels))


def remember_bias_of(cell: str, by_class_name: Mapping[str, float]) -> float | None:
    """The entry of ``by_class_name`` for ``cell`` (an import path), None if it has none."""
    known = [path.rpartition(".")[2] for path in REMEMBER_GATE_CELLS]
    for name, value in by_class_name.items():
        if name not in known or isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(
                f"model.remember_bias.{name}={value!r} is invalid: the keys are the class names "
                f"{', '.join(known)}, the values numbers"
            )
    return by_class_name.get(cell.rpartition(".")[2])


def init_remember_bias(core: nn.Module, cell: str, hidden_size: int, value: float) -> None:
    """Set the remember gate's bias to ``value`` (split as ``value`` on the input side, 0 on the
    recurrent side, which torch adds together)."""
    if cell == "torch.nn.RNN":
        return
    if cell not in REMEMBER_GATE_CELLS:
        raise ConfigError(
            f"model.remember_bias={value} is for the cells {', '.join(REMEMBER_GATE_CELLS)}; "
            f"model.cell={cell} is not one of them: set model.remember_bias=null"
        )
    gate = slice(hidden_size, 2 * hidden_size)
    with torch.no_grad():
        for name, parameter in core.named_parameters():
            if name.startswith("bias_ih"):
                parameter[gate] = value
            elif name.startswith("bias_hh"):
                parameter[gate] = 0.0


def build_model(options: dict[str, Any], spec: DataSpec) -> SequenceModel:
    """The model of ``options`` (conf/model/*.yaml as a dict) for data described by ``spec``: the one
    place a model is built, for training and from checkpoints alike."""
    # A checkpoint written before model.input_dropout, variational_dropout or weight_dropout existed
    # trained without them.
    options = {"input_dropout": 0.0, "variational_dropout": False, "weight_dropout": 0.0} | options
    return SequenceModel(
        **options, input_size=spec.input_size, output_size=spec.output_size, tokens=spec.tokens
    )
