"""What BPTT does, measured on a model: gradient flow through time and closed-loop forecasts.

Pure functions of a SequenceModel and tensors (no Lightning), so tests can check them against
independent estimates; the callbacks in seqexp/callbacks/ run them at validation and draw them.
"""

from collections.abc import Sequence

import torch
from torch import nn

from seqexp.models.sequence_model import SequenceModel, evaluating

# A lag still counts as remembered while its gradient is at least this share of the lag-0 gradient.
MEMORY_THRESHOLD = 1e-3


def gradient_flow(model: SequenceModel, x: torch.Tensor, y: torch.Tensor, tokens: bool) -> torch.Tensor:
    """``norms[k]``: the norm of d loss_T / d e_{T-k}, averaged over rows, for k = 0 ... L-1.

    ``x`` and ``y`` are ``(rows, L, ...)`` inputs and targets, each row run from a zero state;
    ``loss_T`` is a row's loss at its last step and ``e_t`` the encoder's output at step t, i.e. what
    the recurrent core reads. The gradient goes through the real core (cuDNN, oneDNN or our own cell)
    by autograd: the encoded inputs are a leaf that requires grad, hooked in between encoder and core.
    """
    # Eval mode, no dropout: the measurement is of the function the model computes. Validation runs in
    # inference mode; cuDNN's RNN backward refuses eval mode, so it is off here.
    with (
        evaluating(model),
        torch.inference_mode(False),
        torch.enable_grad(),
        torch.backends.cudnn.flags(enabled=False),
    ):
        encoded = model.encoder(x.clone()).detach().requires_grad_(True)
        features, _ = model.core(encoded)
        last = model.head(model.dropout(features[:, -1]))
        # Summed over rows: each row's gradient is that of its own loss (rows do not interact).
        if tokens:
            loss = nn.functional.cross_entropy(last, y[:, -1].clone(), reduction="sum")
        else:
            loss = ((last - y[:, -1].clone()) ** 2).mean(dim=-1).sum()
        (grad,) = torch.autograd.grad(loss, encoded)
    norms = grad.flatten(2).norm(dim=-1).mean(dim=0)  # (L,), indexed by time
    return norms.flip(0).detach()  # indexed by lag: lag 0 is the last step


def memory_steps(norms: torch.Tensor, threshold: float = MEMORY_THRESHOLD) -> int:
    """The largest lag whose gradient norm is still at least ``threshold`` of the lag-0 norm."""
    if not norms[0] > 0:
        return 0
    remembered = torch.nonzero(norms >= threshold * norms[0]).flatten()
    return int(remembered.max())


@torch.no_grad()
def closed_loop_forecasts(
    model: nn.Module,
    series: torch.Tensor,
    origins: Sequence[int],
    horizon: int,
    fed_back: Sequence[int] | None = None,
) -> torch.Tensor:
    """The model's ``horizon``-step forecasts from each origin, ``(origins, horizon, outputs)``.

    ``series`` is ``(N, inputs)``. The state warms up on ``series[:origin]`` (one pass over the series,
    carried from origin to origin); the first forecast is the prediction after reading row ``origin - 1``,
    and each later one reads the one before it, all origins at once as one batch. ``fed_back``: for each
    output, the input column its prediction stands in for, the other inputs taking the series' own values
    (covariates known ahead); None: the outputs are the inputs, all fed back.
    """
    with evaluating(model):
        states, first = [], []
        state, start = None, 0
        for origin in origins:
            output, state = model(series[start:origin].unsqueeze(0), state)
            states.append(state)
            first.append(output[:, -1:])
            start = origin
        state = _as_batch(states)
        prediction = torch.cat(first)
        predictions = [prediction]
        for h in range(1, horizon):
            if fed_back is None:
                step = prediction
            else:
                if len(set(fed_back)) == series.shape[-1]:  # every input predicted: none read from the series
                    step = prediction.new_empty(len(origins), 1, series.shape[-1])
                else:
                    step = series[[origin + h - 1 for origin in origins]].unsqueeze(1).clone()
                step[..., list(fed_back)] = prediction
            prediction, state = model(step, state)
            predictions.append(prediction)
    return torch.cat(predictions, dim=1)


State = torch.Tensor | tuple[torch.Tensor, ...]


def _as_batch(states: list[State]) -> State:
    """The states of single rows, ``(layers, 1, hidden)`` each (a tuple of them for an LSTM), as one batch."""
    if len(states) == 1:
        return states[0]
    if isinstance(states[0], tuple):
        return tuple(torch.cat(parts, dim=1) for parts in zip(*states, strict=True))
    return torch.cat(states, dim=1)  # type: ignore[arg-type]
