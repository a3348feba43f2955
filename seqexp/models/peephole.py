"""PeepholeLSTM: an LSTM whose gates also read the cell state, with the nn.LSTM calling convention.

Two variants (docs/design.md §4):
- ``diagonal`` (Gers & Schmidhuber 2000, TensorFlow's ``use_peepholes``): one weight per unit and gate;
  i and f read c_{t-1}, o reads the new c_t. ``weight_peephole_l{k}`` is ``(3, hidden)`` for (i, f, o).
- ``full`` (the lecture notes): i, f and o read c_{t-1} through a full matrix;
  ``weight_peephole_l{k}`` is ``(3 * hidden, hidden)``, rows in gate order (i, f, o).

Speed: autograd over a Python time loop records about ten nodes per step and runs several times slower
than nn.LSTM. Here each layer is one autograd node, ``_PeepholeLayer``, that does all of the layer's
matmuls: the input projection of all steps in one before the time loop, the loop itself keeping the
activated gates, a hand-written backward loop over the steps in reverse, and the weight gradients of all
steps in one matmul after it.
"""

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable

from seqexp.errors import ConfigError

PEEPHOLES = ("diagonal", "full")

# torch sends float32 matmuls on CPU to MKL, which on AMD CPUs runs at about half the speed of oneDNN (what
# nn.LSTM uses on CPU); below ~2M multiply-adds per call oneDNN's fixed cost per call outweighs that.
_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
_ONEDNN_MIN_MACS = 2**21


def _onednn_pays(rows: int, weight: torch.Tensor) -> bool:
    """Whether ``(rows, k) @ weight.T`` is faster on oneDNN than through torch's matmul."""
    cpu_float32 = weight.device.type == "cpu" and weight.dtype == torch.float32
    big_enough = rows * weight.numel() >= _ONEDNN_MIN_MACS
    # torch declares the flag as its descriptor (ContextProp); at run time it reads as a bool.
    return _ONEDNN and cpu_float32 and big_enough and cast(bool, torch.backends.mkldnn.enabled)


def _linear(x: torch.Tensor, w: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ w.T + add``; ``add`` is None, a bias row or a full matrix; ``w`` dense or a transposed view."""
    if not _onednn_pays(x.shape[0], w):
        return x @ w.t() if add is None else torch.addmm(add, x, w.t())
    op = torch.ops.mkldnn._linear_pointwise
    x = x.contiguous()  # oneDNN runs a reference kernel for a strided x: 1000x slower seen
    if add is None or add.dim() == 1:
        return op(x, w, add, "none", [], "")
    return op.binary(x, add, w, None, "add")


def _matmul_tn(a: torch.Tensor, b_t: torch.Tensor) -> torch.Tensor:
    """``a.T @ b_t.T`` for tall ``a`` (rows, m), wide ``b_t`` (n, rows): a weight gradient over all steps."""
    if _onednn_pays(b_t.shape[0], a.t()):
        return _linear(b_t, a.t()).t()
    return a.t() @ b_t.t()


class _LayerContext(FunctionCtx):
    """What ``_PeepholeLayer.forward`` leaves on its ``ctx`` for backward. Only a type: autograd makes the
    real ctx, which takes any attribute; FunctionCtx declares neither those nor ``saved_tensors``."""

    saved_tensors: tuple[
        torch.Tensor,  # x
        torch.Tensor,  # h0
        torch.Tensor,  # w_ih
        torch.Tensor,  # w_hh
        torch.Tensor | None,  # bias
        torch.Tensor,  # w_peep
        torch.Tensor,  # out
    ]
    needs_input_grad: tuple[bool, ...]
    gates: list[torch.Tensor]
    cs: torch.Tensor
    tanh_cs: torch.Tensor
    diagonal: bool


class _PeepholeLayer(torch.autograd.Function):
    """One layer over a whole sequence, time-major, with all its matmuls.

    ``x`` (T, B, I); ``h0``, ``c0`` (B, H); ``bias`` the sum of both biases, or None. ``w_peep``: the (3, H)
    diagonal peepholes, or for ``full`` the (4H, H) matrix with a zero block for g, so that it is one
    matmul on c_{t-1} into all four gates. Returns ``out`` (T, B, H), ``h_T``, ``c_T``.
    """

    @staticmethod
    def forward(
        ctx: _LayerContext,
        x: torch.Tensor,
        h0: torch.Tensor,
        c0: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        bias: torch.Tensor | None,
        w_peep: torch.Tensor,
        diagonal: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        steps, batch, hidden = x.shape[0], x.shape[1], h0.shape[1]
        x = x.contiguous()
        xp = _linear(x.view(steps * batch, -1), w_ih, bias).view(steps, batch, 4 * hidden)
        out = x.new_empty(steps, batch, hidden)
        cs = x.new_empty(steps + 1, batch, hidden)  # c_{t-1} for step t is cs[t]
        cs[0] = c0
        tanh_cs = x.new_empty(steps, batch, hidden)
        gates = []  # (B, 4, H) per step, after their nonlinearities
        h_prev = h0
        for t in range(steps):
            c_prev, c = cs[t], cs[t + 1]
            pre = xp[t] if diagonal else _linear(c_prev, w_peep, xp[t])
            ifgo = _linear(h_prev, w_hh, pre).view(batch, 4, hidden)
            i, f, g, o = ifgo.unbind(1)
            if diagonal:
                ifgo[:, :2].addcmul_(c_prev.unsqueeze(1), w_peep[:2])
            ifgo[:, :2].sigmoid_()
            g.tanh_()
            torch.mul(f, c_prev, out=c).addcmul_(i, g)
            if diagonal:
                o.addcmul_(c, w_peep[2])
            o.sigmoid_()
            torch.mul(o, torch.tanh(c, out=tanh_cs[t]), out=out[t])
            gates.append(ifgo)
            h_prev = out[t]
        # torch's annotation says tensors only; save_for_backward takes None too (and gives it back).
        ctx.save_for_backward(x, h0, w_ih, w_hh, bias, w_peep, out)  # type: ignore[arg-type]
        ctx.gates, ctx.cs, ctx.tanh_cs, ctx.diagonal = gates, cs, tanh_cs, diagonal
        return out, out[-1].clone(), cs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: _LayerContext, d_out: torch.Tensor, d_h: torch.Tensor, d_c: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, h0, w_ih, w_hh, bias, w_peep, out = ctx.saved_tensors
        gates, cs, tanh_cs, diagonal = ctx.gates, ctx.cs, ctx.tanh_cs, ctx.diagonal
        steps, batch, hidden = out.shape
        sigmoid_backward, tanh_backward = torch.ops.aten.sigmoid_backward, torch.ops.aten.tanh_backward
        w_hh_t, w_peep_t = w_hh.t().contiguous(), w_peep.t().contiguous()
        d_gates = out.new_empty(steps, batch, 4, hidden)  # gradients w.r.t. the gates' pre-activations
        for t in reversed(range(steps)):
            i, f, g, o = gates[t].unbind(1)
            d_i, d_f, d_g, d_o = d_gates[t].unbind(1)
            d_h = d_h + d_out[t]
            sigmoid_backward.grad_input(d_h * tanh_cs[t], o, grad_input=d_o)
            d_c = d_c + tanh_backward(d_h * o, tanh_cs[t])
            if diagonal:
                d_c.addcmul_(d_o, w_peep[2])
            sigmoid_backward.grad_input(d_c * g, i, grad_input=d_i)
            sigmoid_backward.grad_input(d_c * cs[t], f, grad_input=d_f)
            tanh_backward.grad_input(d_c * i, g, grad_input=d_g)
            d_gates_t = d_gates[t].view(batch, 4 * hidden)
            d_c = d_c * f
            if diagonal:
                d_c.addcmul_(d_i, w_peep[0]).addcmul_(d_f, w_peep[1])
            else:
                d_c = _linear(d_gates_t, w_peep_t, d_c)
            d_h = _linear(d_gates_t, w_hh_t)

        # The weight gradients sum over all steps: one matmul for all of them, on what each weight
        # multiplied side by side, transposed: [x | h_{t-1} | c_{t-1} (full only)].
        d_gates_2d = d_gates.view(steps * batch, 4 * hidden)
        h_prev = torch.cat((h0.unsqueeze(0), out[:-1]))
        multiplied = (x, h_prev) if diagonal else (x, h_prev, cs[:-1])
        multiplied_t = torch.cat([m.permute(2, 0, 1) for m in multiplied]).view(-1, steps * batch)
        d_weights = _matmul_tn(d_gates_2d, multiplied_t).split([m.shape[2] for m in multiplied], 1)
        d_w_ih, d_w_hh = d_weights[:2]
        if diagonal:
            d_if = (d_gates[:, :, :2] * cs[:-1].unsqueeze(2)).sum((0, 1))
            d_o = (d_gates[:, :, 3] * cs[1:]).sum((0, 1))
            d_w_peep = torch.cat((d_if, d_o.unsqueeze(0)))
        else:
            d_w_peep = d_weights[2]
        d_x = _linear(d_gates_2d, w_ih.t()).view(x.shape) if ctx.needs_input_grad[0] else None
        d_bias = d_gates_2d.sum(0) if bias is not None else None
        return d_x, d_h, d_c, d_w_ih, d_w_hh, d_bias, d_w_peep, None


class PeepholeLSTM(nn.Module):
    """A multi-layer peephole LSTM with ``nn.LSTM``'s constructor, parameter names and calling convention.

    ``out, (h_n, c_n) = cell(x, state)``; ``state`` None means zeros, else ``(h_0, c_0)`` each
    ``(num_layers, batch, hidden_size)`` (``(num_layers, hidden_size)`` for unbatched 2-D input).
    With all peephole weights at zero it computes exactly what ``nn.LSTM`` computes.
    ``peephole_init``: peephole weights start uniform in ``±peephole_init`` (0, the default, means zeros).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        dropout: float = 0.0,
        batch_first: bool = True,
        peephole: str = "diagonal",
        peephole_init: float = 0.0,
    ) -> None:
        super().__init__()
        # Only the options no other cell has; hidden_size, num_layers and dropout are every cell's and
        # are checked with the configuration (docs/design.md §2).
        if peephole not in PEEPHOLES:
            raise ConfigError(f"model.peephole={peephole!r} is not one of: {', '.join(PEEPHOLES)}")
        if not peephole_init >= 0:
            raise ConfigError(f"model.peephole_init={peephole_init!r} must be >= 0")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.dropout, self.batch_first = bias, dropout, batch_first
        self.peephole, self.peephole_init = peephole, peephole_init
        gates = 4 * hidden_size
        for k in range(num_layers):
            layer_input = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", nn.Parameter(torch.empty(gates, layer_input)))
            setattr(self, f"weight_hh_l{k}", nn.Parameter(torch.empty(gates, hidden_size)))
            if bias:
                setattr(self, f"bias_ih_l{k}", nn.Parameter(torch.empty(gates)))
                setattr(self, f"bias_hh_l{k}", nn.Parameter(torch.empty(gates)))
            peep_rows = 3 if peephole == "diagonal" else 3 * hidden_size
            setattr(self, f"weight_peephole_l{k}", nn.Parameter(torch.empty(peep_rows, hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.hidden_size)
        for name, param in self.named_parameters():
            init_bound = self.peephole_init if name.startswith("weight_peephole") else bound
            nn.init.uniform_(param, -init_bound, init_bound)

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
            f"dropout={self.dropout}, batch_first={self.batch_first}, peephole={self.peephole!r}"
        )

    def _layer(
        self, k: int, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Layer ``k`` over time-major ``x``: ``(out, h_T, c_T)``."""
        bias = getattr(self, f"bias_ih_l{k}") + getattr(self, f"bias_hh_l{k}") if self.bias else None
        w_peep = getattr(self, f"weight_peephole_l{k}")
        diagonal = self.peephole == "diagonal"
        if not diagonal:
            i_f, o = w_peep.split(2 * self.hidden_size)
            w_peep = torch.cat((i_f, w_peep.new_zeros(self.hidden_size, self.hidden_size), o))
        w_ih, w_hh = getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}")
        return _PeepholeLayer.apply(x, h0, c0, w_ih, w_hh, bias, w_peep, diagonal)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if x.dim() not in (2, 3):
            raise ValueError(f"PeepholeLSTM: expected input to be 2-D or 3-D, got {x.dim()}-D instead")
        unbatched = x.dim() == 2
        # Time-major inside, so that every step reads and writes contiguous (batch, features) slices.
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        expected = (self.num_layers, x.shape[1], self.hidden_size)
        if state is None:
            h0 = c0 = x.new_zeros(expected)
        else:
            h0, c0 = (s.unsqueeze(1) for s in state) if unbatched else state
            for name, s in (("h_0", h0), ("c_0", c0)):
                if s.shape != expected:
                    shown = (expected[0], expected[2]) if unbatched else expected
                    raise RuntimeError(f"PeepholeLSTM: expected {name} of size {shown}, got {tuple(s.shape)}")
        h_layers, c_layers = [], []
        for k in range(self.num_layers):
            if k > 0:
                x = F.dropout(x, self.dropout, self.training)
            x, h, c = self._layer(k, x, h0[k], c0[k])
            h_layers.append(h)
            c_layers.append(c)
        h_n, c_n = torch.stack(h_layers), torch.stack(c_layers)
        if unbatched:
            return x.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        if self.batch_first:
            x = x.transpose(0, 1).contiguous()
        return x, (h_n, c_n)
