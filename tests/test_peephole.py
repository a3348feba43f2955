"""PeepholeLSTM against nn.LSTM, against the equations written out plainly, and against finite differences."""

import importlib
import importlib.util
import inspect
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from seqexp.errors import ConfigError
from seqexp.models.peephole import PeepholeLSTM

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("diagonal", "full")


def plain_peephole_lstm(cell: PeepholeLSTM, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor):
    """docs/design.md §4, one step at a time and as plainly as possible; ``x`` is (batch, time, features)."""
    hidden = cell.hidden_size
    h_n, c_n = [], []
    for k in range(cell.num_layers):
        w_ih, w_hh = getattr(cell, f"weight_ih_l{k}"), getattr(cell, f"weight_hh_l{k}")
        b = getattr(cell, f"bias_ih_l{k}") + getattr(cell, f"bias_hh_l{k}")
        p = getattr(cell, f"weight_peephole_l{k}")
        h, c = h0[k], c0[k]
        outputs = []
        for t in range(x.shape[1]):
            z_i, z_f, z_g, z_o = (x[:, t] @ w_ih.T + h @ w_hh.T + b).split(hidden, dim=1)
            if cell.peephole == "diagonal":
                i = torch.sigmoid(z_i + p[0] * c)
                f = torch.sigmoid(z_f + p[1] * c)
                c = f * c + i * torch.tanh(z_g)
                o = torch.sigmoid(z_o + p[2] * c)  # the new cell state
            else:
                p_i, p_f, p_o = p.split(hidden)
                i = torch.sigmoid(z_i + c @ p_i.T)
                f = torch.sigmoid(z_f + c @ p_f.T)
                o = torch.sigmoid(z_o + c @ p_o.T)  # the previous cell state
                c = f * c + i * torch.tanh(z_g)
            h = o * torch.tanh(c)
            outputs.append(h)
        x = torch.stack(outputs, dim=1)
        h_n.append(h)
        c_n.append(c)
    return x, (torch.stack(h_n), torch.stack(c_n))


def run_with_grads(forward, module: nn.Module, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor) -> dict:
    """Outputs, final states and the gradients of a loss that weighs all three (so none is left out)."""
    x, h0, c0 = (t.detach().clone().requires_grad_() for t in (x, h0, c0))
    out, (h, c) = forward(x, (h0, c0))
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t) for t in (out, h, c)]
    loss = sum((t * w).sum() for t, w in zip((out, h, c), weights, strict=True))
    module.zero_grad()
    loss.backward()
    result = {"out": out, "h": h, "c": c, "grad x": x.grad, "grad h0": h0.grad, "grad c0": c0.grad}
    result.update({f"grad {name}": p.grad for name, p in module.named_parameters()})
    return {key: value.detach().cpu() for key, value in result.items()}


def random_input(layers: int, batch: int, steps: int, features: int, hidden: int, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, steps, features, generator=gen, dtype=dtype)
    h0, c0 = (torch.randn(layers, batch, hidden, generator=gen, dtype=dtype) for _ in range(2))
    return x, h0, c0


def assert_all_close(actual: dict, expected: dict, **tolerance) -> None:
    assert expected.keys() <= actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], **tolerance, msg=lambda m, k=key: f"{k}: {m}")


# batch 32 x hidden 128 is large enough for the per-step matmuls to take the oneDNN path on CPU.
@pytest.mark.parametrize("batch, hidden", [(4, 8), (32, 128)], ids=["small", "onednn-sized"])
@pytest.mark.parametrize("peephole", VARIANTS)
def test_zero_peepholes_equal_nn_lstm(peephole: str, batch: int, hidden: int) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(5, hidden, num_layers=3, batch_first=True)
    cell = PeepholeLSTM(5, hidden, num_layers=3, peephole=peephole)
    missing = cell.load_state_dict(lstm.state_dict(), strict=False).missing_keys
    assert missing == [f"weight_peephole_l{k}" for k in range(3)]
    assert all((cell.get_parameter(name) == 0).all() for name in missing)

    x, h0, c0 = random_input(3, batch, 6, 5, hidden)
    ours = run_with_grads(cell, cell, x, h0, c0)
    theirs = run_with_grads(lstm, lstm, x, h0, c0)
    assert_all_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("peephole, peep_shape", [("diagonal", (3, 16)), ("full", (48, 16))])
def test_parameters_named_and_initialised_like_nn_lstm(peephole: str, peep_shape: tuple, bias: bool) -> None:
    lstm = nn.LSTM(5, 16, num_layers=2, bias=bias)
    cell = PeepholeLSTM(5, 16, num_layers=2, bias=bias, peephole=peephole)
    expected = {name: tuple(p.shape) for name, p in lstm.named_parameters()}
    expected |= {f"weight_peephole_l{k}": peep_shape for k in range(2)}
    assert {name: tuple(p.shape) for name, p in cell.named_parameters()} == expected
    shared = [p for name, p in cell.named_parameters() if "peephole" not in name]
    assert all(p.std() > 0.1 and p.abs().max() <= 1 / math.sqrt(16) for p in shared)
    assert not cell.weight_peephole_l0.any()
    initialised = PeepholeLSTM(5, 16, peephole=peephole, peephole_init=0.3).weight_peephole_l0
    assert 0 < initialised.abs().max() <= 0.3


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("peephole", VARIANTS)
def test_random_peepholes_match_the_plain_equations(peephole: str, batch_first: bool) -> None:
    torch.manual_seed(0)
    cell = PeepholeLSTM(3, 6, num_layers=2, peephole=peephole, batch_first=batch_first, peephole_init=0.5)
    cell = cell.double()
    x, h0, c0 = random_input(2, 4, 5, 3, 6, dtype=torch.float64)

    def forward_batch_first(x, state):
        if batch_first:
            return cell(x, state)
        out, state = cell(x.transpose(0, 1), state)
        return out.transpose(0, 1), state

    ours = run_with_grads(forward_batch_first, cell, x, h0, c0)
    expected = run_with_grads(lambda x, state: plain_peephole_lstm(cell, x, *state), cell, x, h0, c0)
    assert ours["grad weight_peephole_l0"].abs().min() > 0
    assert_all_close(ours, expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("peephole", VARIANTS)
def test_random_peepholes_in_float32_at_onednn_size(peephole: str) -> None:
    """The oneDNN path (CPU float32, large enough) against the float64 path, which is checked above."""
    torch.manual_seed(0)
    cell = PeepholeLSTM(5, 128, num_layers=2, peephole=peephole, peephole_init=0.1)
    x, h0, c0 = random_input(2, 32, 4, 5, 128)
    ours = run_with_grads(cell, cell, x, h0, c0)
    cell = cell.double()
    expected = run_with_grads(cell, cell, x.double(), h0.double(), c0.double())
    assert_all_close(ours, {key: value.float() for key, value in expected.items()}, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("peephole", VARIANTS)
def test_gradcheck(peephole: str) -> None:
    cell = PeepholeLSTM(3, 4, num_layers=2, peephole=peephole, peephole_init=0.5).double()
    x, h0, c0 = (t.requires_grad_() for t in random_input(2, 2, 3, 3, 4, dtype=torch.float64))
    names = [name for name, _ in cell.named_parameters()]

    def outputs(x, h0, c0, *params):
        out, (h, c) = torch.func.functional_call(cell, dict(zip(names, params, strict=True)), (x, (h0, c0)))
        return out, h, c

    assert torch.autograd.gradcheck(outputs, (x, h0, c0, *cell.parameters()))


@pytest.mark.parametrize(
    "shape, batch_first",
    [((4, 7, 5), True), ((7, 4, 5), False), ((7, 5), True)],
    ids=["batch-first", "time-first", "unbatched"],
)
def test_state_shapes_and_none_like_nn_lstm(shape: tuple, batch_first: bool) -> None:
    lstm = nn.LSTM(5, 6, num_layers=2, batch_first=batch_first)
    cell = PeepholeLSTM(5, 6, num_layers=2, batch_first=batch_first, peephole_init=0.5)
    x = torch.randn(shape)
    out, (h, c) = cell(x)
    lstm_out, (lstm_h, lstm_c) = lstm(x)
    assert (out.shape, h.shape, c.shape) == (lstm_out.shape, lstm_h.shape, lstm_c.shape)

    zeros = torch.zeros_like(h)
    out_zeros, (h_zeros, c_zeros) = cell(x, (zeros, zeros))
    torch.testing.assert_close((out, h, c), (out_zeros, h_zeros, c_zeros), atol=0, rtol=0)
    with pytest.raises(RuntimeError, match="expected h_0 of size"):
        cell(x, (zeros[:1], zeros))


@pytest.mark.parametrize("peephole", VARIANTS)
def test_state_carried_across_windows_equals_one_long_call(peephole: str) -> None:
    cell = PeepholeLSTM(3, 6, num_layers=2, peephole=peephole, peephole_init=0.5).double()
    x, _, _ = random_input(2, 4, 12, 3, 6, dtype=torch.float64)
    whole, (h_whole, c_whole) = cell(x)
    whole.square().sum().backward()
    grads_whole = [p.grad.clone() for p in cell.parameters()]

    cell.zero_grad()
    state, windows = None, []
    for window in x.split(4, dim=1):
        out, state = cell(window, state)
        windows.append(out)
    torch.testing.assert_close(torch.cat(windows, dim=1), whole)
    torch.testing.assert_close(state, (h_whole, c_whole))
    # Without a detach in between the windows form one graph: the gradients through the carried state too.
    torch.cat(windows, dim=1).square().sum().backward()
    torch.testing.assert_close([p.grad for p in cell.parameters()], grads_whole)


def test_dropout_between_layers_in_training_only() -> None:
    torch.manual_seed(0)
    cell = PeepholeLSTM(3, 16, num_layers=2, dropout=0.5, peephole_init=0.5)
    no_dropout = PeepholeLSTM(3, 16, num_layers=2, peephole_init=0.5)
    no_dropout.load_state_dict(cell.state_dict())
    x = torch.randn(2, 5, 3)

    assert not torch.equal(cell(x)[0], cell(x)[0])
    cell.eval()
    torch.testing.assert_close(cell(x), cell(x), atol=0, rtol=0)
    torch.testing.assert_close(cell(x), no_dropout(x), atol=0, rtol=0)

    one_layer = PeepholeLSTM(3, 16, num_layers=1, dropout=0.5)  # nothing between layers to drop
    torch.testing.assert_close(one_layer(x), one_layer(x), atol=0, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("peephole", VARIANTS)
def test_cpu_and_gpu_agree(peephole: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)  # TF32 would need looser bounds
    torch.manual_seed(0)
    cpu = PeepholeLSTM(5, 32, num_layers=2, peephole=peephole, peephole_init=0.3).to(dtype)
    gpu = PeepholeLSTM(5, 32, num_layers=2, peephole=peephole).to(dtype).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x, h0, c0 = random_input(2, 8, 10, 5, 32, dtype=dtype)
    on_cpu = run_with_grads(cpu, cpu, x, h0, c0)
    on_gpu = run_with_grads(gpu, gpu, x.cuda(), h0.cuda(), c0.cuda())
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    assert_all_close(on_gpu, on_cpu, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"peephole": "foo"}, "model.peephole='foo' is not one of: diagonal, full"),
        ({"peephole_init": -1.0}, "model.peephole_init=-1.0 must be >= 0"),
    ],
)
def test_bad_peephole_options_are_refused_by_the_cell(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        PeepholeLSTM(**{"input_size": 3, "hidden_size": 4} | kwargs)
    assert str(refused.value) == message


@pytest.mark.parametrize("override", [[], ["peephole=full"]])
def test_model_config_builds_the_cell(override: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    # Composed as a run composes it: the size comes from conf/train.yaml, shared by every cell.
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=peephole-lstm", *(f"model.{o}" for o in override)]).model
    module_name, _, class_name = cfg.cell.rpartition(".")
    cell_cls = getattr(importlib.import_module(module_name), class_name)
    # The keys every cell shares; the rest are the peephole cell's own.
    known = {"hidden_size", "num_layers", *OmegaConf.load(ROOT / "conf" / "_model.yaml")}
    extra = {key: value for key, value in cfg.items() if key not in known}
    cell = cell_cls(
        input_size=3, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, dropout=cfg.dropout, **extra
    )
    assert cell.peephole == ("full" if override else "diagonal")
    out, (h, c) = cell(torch.randn(2, 5, 3))
    assert out.shape == (2, 5, cfg.hidden_size) and h.shape == c.shape == (cfg.num_layers, 2, cfg.hidden_size)


def test_the_cells_defaults_are_its_configs() -> None:
    # PeepholeLSTM keeps defaults for code that builds it without a config; a run takes the YAML's. Two
    # homes of one default, held equal here so that they cannot drift apart.
    from omegaconf import OmegaConf

    config = OmegaConf.load(ROOT / "conf" / "model" / "peephole-lstm.yaml")
    parameters = inspect.signature(PeepholeLSTM).parameters
    for key in ("peephole", "peephole_init"):
        assert parameters[key].default == config[key], key


def test_bench_script_runs(capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location("bench_cells", ROOT / "scripts/bench_cells.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--shape", "small", "--repeats", "1", "--warmup", "0"])
    printed = capsys.readouterr().out
    for name in ("nn.RNN", "nn.LSTM", "nn.GRU", "peephole diagonal", "peephole full", "torch "):
        assert name in printed
