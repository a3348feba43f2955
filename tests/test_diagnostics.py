"""Gradient flow through time against finite differences, and the closed-loop forecast's feedback."""

import pytest
import torch
from torch import nn

from seqexp.diagnostics import closed_loop_forecasts, gradient_flow, memory_steps
from seqexp.models.sequence_model import SequenceModel
from tests.helpers import model_options

CELLS = ["torch.nn.RNN", "torch.nn.LSTM", "torch.nn.GRU", "seqexp.models.peephole.PeepholeLSTM"]


def model_of(cell: str, size: int = 1, tokens: bool = False, **options) -> SequenceModel:
    # Unless a test says otherwise: conf/_model.yaml's shared keys (one layer, no dropout, torch's
    # initialisation, one-hot inputs where they are tokens), since SequenceModel has no defaults of its own.
    plain = model_options(cell, options.pop("hidden_size"))
    return SequenceModel(input_size=size, output_size=size, tokens=tokens, **(plain | options))


def row_losses_at_last_step(model: SequenceModel, encoded: torch.Tensor, y: torch.Tensor, tokens: bool):
    """Each row's loss at its last step, computed from already-encoded inputs."""
    last = model.head(model.core(encoded)[0][:, -1])
    if tokens:
        return nn.functional.cross_entropy(last, y[:, -1], reduction="none")
    return ((last - y[:, -1]) ** 2).mean(dim=-1)


def finite_difference_flow(model, x, y, tokens, eps=1e-6) -> torch.Tensor:
    """Central differences of every row's last-step loss in every encoded input component."""
    with torch.no_grad():
        encoded = model.encoder(x)
        rows, length, features = encoded.shape
        grad = torch.zeros_like(encoded)
        for t in range(length):
            for j in range(features):
                step = torch.zeros_like(encoded)
                step[:, t, j] = eps
                up = row_losses_at_last_step(model, encoded + step, y, tokens)
                down = row_losses_at_last_step(model, encoded - step, y, tokens)
                grad[:, t, j] = (up - down) / (2 * eps)
    return grad.norm(dim=-1).mean(dim=0).flip(0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("tokens", [False, True])
def test_gradient_flow_agrees_with_finite_differences(cell: str, tokens: bool):
    torch.manual_seed(0)
    size = 5 if tokens else 2
    # Tokens through an embedding: a float64 encoder (one-hot vectors are float32).
    options = dict(encoder="embedding", embedding_dim=3) if tokens else {}
    model = model_of(cell, size, tokens, hidden_size=6, num_layers=2, **options).double()
    if "Peephole" in cell:  # non-zero peepholes, so that their paths are part of what is checked
        for name, parameter in model.core.named_parameters():
            if "peephole" in name:
                nn.init.uniform_(parameter, -0.5, 0.5)
    x = torch.randint(0, size, (3, 12)) if tokens else torch.randn(3, 12, size, dtype=torch.float64)
    y = torch.randint(0, size, (3, 12)) if tokens else torch.randn(3, 12, size, dtype=torch.float64)

    norms = gradient_flow(model, x, y, tokens)
    expected = finite_difference_flow(model, x, y, tokens)
    assert norms.shape == (12,)
    assert torch.allclose(norms, expected, rtol=1e-5, atol=1e-9), (norms, expected)
    assert norms[0] > 0 and norms[-1] > 0  # the last step reaches all the way back


def test_gradient_flow_leaves_the_model_as_it_found_it():
    model = model_of("torch.nn.GRU", hidden_size=4, dropout=0.5).double()
    before = [p.detach().clone() for p in model.parameters()]
    with torch.inference_mode():  # as during validation
        gradient_flow(
            model, torch.randn(2, 8, 1, dtype=torch.float64), torch.randn(2, 8, 1, dtype=torch.float64), False
        )
    assert model.training  # restored after measuring in eval mode
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_memory_steps_is_the_largest_lag_still_above_a_thousandth_of_lag_zero():
    assert memory_steps(torch.tensor([1.0, 0.1, 2e-3, 5e-4, 1e-3, 1e-6])) == 4
    assert memory_steps(torch.tensor([1.0, 1e-4, 1e-5])) == 0
    assert memory_steps(torch.zeros(5)) == 0


class SpyModel(nn.Module):
    """Records every input it reads and answers with fresh random numbers, carrying a step count."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def forward(self, x, state=None):
        self.inputs.append(x.clone())
        output = torch.randn(x.shape[0], x.shape[1], x.shape[2])
        self.outputs.append(output)
        return output, (0 if state is None else state) + x.shape[1]


def test_the_forecast_feeds_back_exactly_what_the_model_predicted():
    spy = SpyModel()
    series = torch.randn(12, 2)
    warm_up = series[:7].unsqueeze(0)
    forecast = closed_loop_forecasts(spy, series, [7], horizon=5)[0]

    assert torch.equal(spy.inputs[0], warm_up)  # the warm-up first, all of it in one call
    assert len(spy.inputs) == 5 and all(x.shape == (1, 1, 2) for x in spy.inputs[1:])
    # Each closed-loop input is the prediction the model made just before it.
    assert torch.equal(spy.inputs[1], spy.outputs[0][:, -1:])
    for k in range(2, 5):
        assert torch.equal(spy.inputs[k], spy.outputs[k - 1])
    # The forecast is those predictions, in order: the one after the warm-up, then each fed-back answer.
    expected = torch.cat([spy.outputs[0][:, -1:], *spy.outputs[1:]], dim=1)[0]
    assert torch.equal(forecast, expected) and forecast.shape == (5, 2)


@pytest.mark.parametrize("cell", CELLS[1:])
def test_remember_bias_opens_the_gate_that_keeps_the_state(cell: str):
    torch.manual_seed(0)
    model = model_of(cell, hidden_size=4, num_layers=2, remember_bias=3.0)
    for name, parameter in model.core.named_parameters():
        if name.startswith("bias_"):
            expected = 3.0 if name.startswith("bias_ih") else 0.0
            assert torch.all(parameter[4:8] == expected), name
    # With the gate open the gradient reaches much further back than with torch's initialisation.
    torch.manual_seed(0)
    plain = model_of(cell, hidden_size=4, num_layers=2)
    x, y = torch.randn(2, 40, 1), torch.randn(2, 40, 1)
    assert gradient_flow(model, x, y, False)[30] > 10 * gradient_flow(plain, x, y, False)[30]


class OtherLSTM(nn.LSTM):
    """A cell with the nn.LSTM calling convention that remember_bias does not know."""


def test_remember_bias_is_refused_for_a_cell_it_does_not_know():
    from seqexp.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"model.remember_bias=2.0 .*model.cell=tests.test_diagnostics.OtherLSTM"
    ):
        model_of("tests.test_diagnostics.OtherLSTM", hidden_size=4, remember_bias=2.0)
    rnn = model_of("torch.nn.RNN", hidden_size=4, remember_bias=2.0)  # no gate: nothing set
    assert all(p.detach().abs().max() < 1 for name, p in rnn.core.named_parameters() if "bias" in name)


def test_remember_bias_by_class_name_gives_each_cell_its_own():
    from seqexp.errors import ConfigError

    by_cell = {"LSTM": 3.0, "GRU": 1.0}
    for cell, expected in (("torch.nn.LSTM", 3.0), ("torch.nn.GRU", 1.0)):
        model = model_of(cell, hidden_size=4, remember_bias=by_cell)
        assert torch.all(model.core.bias_ih_l0[4:8] == expected), cell
    # A cell the mapping does not name keeps torch's initialisation.
    torch.manual_seed(0)
    unnamed = model_of(CELLS[-1], hidden_size=4, remember_bias=by_cell)
    torch.manual_seed(0)
    plain = model_of(CELLS[-1], hidden_size=4)
    assert all(torch.equal(a, b) for a, b in zip(unnamed.parameters(), plain.parameters(), strict=True))
    with pytest.raises(ConfigError, match=r"model.remember_bias.Lstm=3.0 .* LSTM, GRU, PeepholeLSTM"):
        model_of("torch.nn.LSTM", hidden_size=4, remember_bias={"Lstm": 3.0})
