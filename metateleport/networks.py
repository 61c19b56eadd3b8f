"""The coordinatewise networks of the learned optimizer (docs/design.md section 5): one small
LSTM shared by every coordinate, with its own state per coordinate, and the flattening that puts
the coordinates of B problems on its batch axis.

- ``CoordinateLSTM``: the 2-layer LSTM, one time step per call.
- ``CoordinateNet``: log-sign preprocessing, the LSTM and a linear head (the body of m1 and m2);
  ``UpdateLSTM`` (m1), ``GroupLSTM`` (m2, with the norm of T) and ``LrTeleLSTM`` (m2 with a
  step-size head) are its kinds.
- ``call_groups``: one call of a net on the coordinates of several groups of problems (a mixed
  batch's architectures, docs/design.md section 9).

learned.py builds the inner-loop objects (m1 as an update rule, m2 as a teleport) on them.
"""

from __future__ import annotations

import contextlib
import math
import threading

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from .preprocess import log_sign
from .teleport import clip_frobenius, rescale_frobenius

__all__ = [
    "CoordinateLSTM",
    "CoordinateNet",
    "GroupLSTM",
    "LrTeleLSTM",
    "UpdateLSTM",
    "call_groups",
    "flatten_coords",
    "fused_inference",
    "rms_normalized",
    "set_fused_training",
    "set_recompute",
    "unflatten_coords",
]

def rms_normalized(x: torch.Tensor, dims) -> torch.Tensor:
    """x over its root mean square over ``dims``, floored so that a zero gradient stays zero."""
    return x / x.pow(2).mean(dim=dims, keepdim=True).sqrt().clamp_min(torch.finfo(x.dtype).tiny)


class CoordinateLSTM(nn.Module):
    """A 2-layer LSTM applied independently to N coordinates, one time step per call.

    forward(x (N, in_features), state [h (layers, N, H), c (layers, N, H)])
        -> (top-layer h (N, H), new state).

    One ``nn.LSTM`` call on a length-1 sequence steps both layers: on CPU it runs oneDNN's
    fused RNN kernels, faster than two nn.LSTMCell (docs/benchmarks.md). tests/test_learned.py
    checks it against LSTMCells.

    More than ``chunk`` coordinates go through the kernel ``chunk`` at a time (the same
    function: every coordinate is its own sequence): one call on 25,600 coordinates was 1.3x
    slower per coordinate than calls on a few thousand, its buffers too large for the caches
    and freshly mapped on every call (docs/benchmarks.md); None: one call.

    With ``fused_training`` (set by ``set_fused_training``; not saved) a step under autograd
    runs each layer as ``_FusedCell``, a hand-written forward and backward (the same function
    and gradients to float rounding, about 2x faster than oneDNN's forward+backward at the
    meta-training sizes; train.fused_lstm).

    With ``recompute`` (set by ``set_recompute``; not saved) a step under autograd keeps only
    its inputs and recomputes its forward in the backward pass (torch.utils.checkpoint), so
    that an unroll does not hold every step's gate activations (train.recompute_lstm).
    """

    #: coordinates per kernel call (None: all in one)
    CHUNK: int | None = 8192

    def __init__(self, in_features: int = 2, hidden_size: int = 20, num_layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(in_features, hidden_size, num_layers=num_layers)
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.recompute = False
        self.fused_training = False
        self.chunk = self.CHUNK

    def init_state(self, n: int, like: torch.Tensor) -> list[torch.Tensor]:
        zeros = like.new_zeros(self.num_layers, n, self.hidden_size)
        return [zeros, zeros]

    def _call(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        if self.fused_training and torch.is_grad_enabled():
            inp, hs, cs = x, [], []
            for layer in range(self.num_layers):
                inp, cell = _FusedCell.apply(inp, h[layer], c[layer], *self._params(layer))
                hs.append(inp)
                cs.append(cell)
            return inp, torch.stack(hs), torch.stack(cs)
        out, (h, c) = self.lstm(x.unsqueeze(0), (h, c))
        return out[0], h, c

    def _step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        n = self.chunk
        if n is None or x.shape[0] <= n:
            return self._call(x, h, c)
        parts = [self._call(*p) for p in zip(x.split(n), h.split(n, 1), c.split(n, 1))]
        out, h, c = zip(*parts)
        return torch.cat(out), torch.cat(h, 1), torch.cat(c, 1)

    def _params(self, layer: int) -> tuple[torch.Tensor, ...]:
        """nn.LSTM's (weight_ih, weight_hh, bias_ih, bias_hh) of ``layer``."""
        return tuple(getattr(self.lstm, f"{name}_l{layer}")
                     for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _fused_step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """The step without autograd, from torch's own kernels writing in place: per chunk and
        layer two matmuls into the gates, one sigmoid over all of them, the cell update in
        place, and the new cell's tanh as 2 sigmoid(2c) - 1 (``fused_inference``; the same
        function as nn.LSTM's to float rounding)."""
        n = self.chunk or self.CHUNK or x.shape[0]
        weights = [_doubled(*self._params(layer)) for layer in range(self.num_layers)]
        h_new, c_new = h.new_empty(h.shape), c.new_empty(c.shape)
        for start in range(0, x.shape[0], n):
            rows = slice(start, start + n)
            inp = x[rows]
            for layer, doubled in enumerate(weights):
                gates, _, hidden = _fused_layer(inp, h[layer, rows], c[layer, rows], *doubled,
                                                c_new[layer, rows], h_new[layer, rows])
                inp = hidden.mul_(gates[:, 3])  # h' = o tanh(c')
        return h_new[-1], h_new, c_new

    def forward(self, x: torch.Tensor, state: list[torch.Tensor]):
        if not torch.is_grad_enabled() and _FUSED.on:
            out, h, c = self._fused_step(x, state[0], state[1])
        elif self.recompute and torch.is_grad_enabled():
            out, h, c = checkpoint(self._step, x, state[0], state[1], use_reentrant=False)
        else:
            out, h, c = self._step(x, state[0], state[1])
        return out, [h, c]


def _doubled(w_ih, w_hh, b_ih, b_hh) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(W_ih^T, W_hh^T, b_ih + b_hh) of one LSTM layer with the cell-input gate's rows doubled,
    so that one sigmoid serves all four gates: tanh(z) = 2 sigmoid(2z) - 1."""
    H = w_hh.shape[1]
    scale = torch.ones(4 * H, dtype=w_ih.dtype, device=w_ih.device)
    scale[2 * H:3 * H] = 2.0
    return (w_ih * scale[:, None]).t(), (w_hh * scale[:, None]).t(), (b_ih + b_hh) * scale


def _fused_layer(x, h, c, w_ih_t, w_hh_t, bias, cell=None, tanh_cell=None):
    """One layer's step from ``_doubled`` weights: the activated gates (N, 4, H) in nn.LSTM's
    order (i, f, g, o), the new cell c' = f c + i g and tanh(c') = 2 sigmoid(2c') - 1 (torch's
    sigmoid is faster than its tanh), the last two written into ``cell`` and ``tanh_cell``
    when given."""
    gates = torch.addmm(bias, x, w_ih_t).addmm_(h, w_hh_t).sigmoid_()
    gates = gates.view(-1, 4, h.shape[1])
    i, f, g, _ = gates.unbind(1)
    g.mul_(2.0).sub_(1.0)
    cell = torch.mul(f, c, out=cell).addcmul_(i, g)
    tanh_cell = torch.mul(cell, 2.0, out=tanh_cell).sigmoid_().mul_(2.0).sub_(1.0)
    return gates, cell, tanh_cell


class _Fused(threading.local):
    on = False


_FUSED = _Fused()


@contextlib.contextmanager
def fused_inference(on: bool = True):
    """Within this context (in this thread), every CoordinateLSTM step taken without autograd
    runs ``CoordinateLSTM._fused_step`` instead of nn.LSTM's kernel: 2.5x faster on CPU at
    10^5 coordinates (docs/benchmarks.md), equal to float rounding, not bit for bit. The
    torch.optim face uses it (LearnedTorchOptimizer's ``fused``); evaluation and validation
    keep nn.LSTM's kernel, whose trajectories tests/test_shipped_trajectories.py pins
    (meta-training's steps under autograd have their own switch, ``set_fused_training``)."""
    before = _FUSED.on
    _FUSED.on = on
    try:
        yield
    finally:
        _FUSED.on = before


class _FusedCell(torch.autograd.Function):
    """One LSTM layer's step on N coordinates, nn.LSTM's gate order (i, f, g, o) and parameters,
    with a hand-written backward: forward(x, h, c, w_ih, w_hh, b_ih, b_hh) -> (h', c').

    The forward is ``CoordinateLSTM._fused_step``'s (one sigmoid over the four gates with the
    cell-input gate's rows doubled, tanh(z) = 2 sigmoid(2z) - 1) and keeps the activated gates
    and tanh(c'); the backward is the chain rule through them, three matmuls for the inputs'
    and the weights' gradients. Not differentiable twice (nothing in meta-training
    differentiates the LSTM's gradient: the lookahead's double backward goes through the
    loss's gradient, not through m1)."""

    @staticmethod
    def forward(ctx, x, h, c, w_ih, w_hh, b_ih, b_hh):
        gates, cell, tanh_c = _fused_layer(x, h, c, *_doubled(w_ih, w_hh, b_ih, b_hh))
        ctx.save_for_backward(x, h, c, w_ih, w_hh, gates, tanh_c)
        return tanh_c * gates[:, 3], cell

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h, d_c):
        x, h, c, w_ih, w_hh, gates, tanh_c = ctx.saved_tensors
        i, f, g, o = gates.unbind(1)
        d = torch.empty_like(gates)
        d_i, d_f, d_g, d_o = d.unbind(1)
        # through h' = o tanh(c') into c', then c' = f c + i g into the gates
        d_cell = d_c + d_h * o * (1.0 - tanh_c * tanh_c)
        torch.mul(d_h, tanh_c, out=d_o).mul_(o * (1.0 - o))
        torch.mul(d_cell, g, out=d_i).mul_(i * (1.0 - i))
        torch.mul(d_cell, c, out=d_f).mul_(f * (1.0 - f))
        torch.mul(d_cell, i, out=d_g).mul_(1.0 - g * g)
        need, d = ctx.needs_input_grad, d.view(d.shape[0], -1)
        d_x = d @ w_ih if need[0] else None
        d_hp = d @ w_hh if need[1] else None
        d_cp = d_cell * f if need[2] else None
        d_wih = d.t() @ x if need[3] else None
        d_whh = d.t() @ h if need[4] else None
        d_b = d.sum(0) if need[5] or need[6] else None
        return d_x, d_hp, d_cp, d_wih, d_whh, d_b, d_b


def set_fused_training(module: nn.Module, on: bool) -> None:
    """Switch the hand-written LSTM step under autograd (CoordinateLSTM.fused_training) on or
    off in every CoordinateLSTM of ``module``."""
    for m in module.modules():
        if isinstance(m, CoordinateLSTM):
            m.fused_training = on


def set_recompute(module: nn.Module, on: bool) -> None:
    """Switch recomputation (CoordinateLSTM.recompute) on or off in every CoordinateLSTM of
    ``module``."""
    for m in module.modules():
        if isinstance(m, CoordinateLSTM):
            m.recompute = on


def flatten_coords(mats: list[torch.Tensor]) -> torch.Tensor:
    """[(B, a_k, b_k)] -> (B, sum_k a_k b_k): every coordinate of a problem in one row (also
    for vectors (B, a_k))."""
    return torch.cat([m.reshape(m.shape[0], -1) for m in mats], dim=1)


def unflatten_coords(flat: torch.Tensor, like: list[torch.Size]) -> list[torch.Tensor]:
    """Inverse of ``flatten_coords`` for tensors of shapes ``like`` ((B, a_k, b_k) or
    (B, a_k) each)."""
    sizes = [math.prod(s[1:]) for s in like]
    return [part.reshape(s) for part, s in zip(flat.split(sizes, dim=1), like)]


class CoordinateNet(nn.Module):
    """The shared body of m1 and m2: coordinates x (N,) -> out_scale * Linear(LSTM(log_sign(x))).

    forward(x (N,), state, extra (N, n_extra) or None) -> (output (N,), or (N, n_out) for
    n_out > 1, top hidden state (N, H), new state). ``extra`` holds further per-coordinate
    inputs, fed to the LSTM unpreprocessed beside the two log-sign features of x. With
    ``skip``, the output also gets a learned linear term of ``extra`` that bypasses the LSTM
    and ``out_scale`` (its weights start at 0): output = out_scale * head(h) + skip(extra).
    """

    def __init__(self, hidden_size: int = 20, p: float = 10.0, out_scale: float = 0.1,
                 n_extra: int = 0, skip: bool = False, num_layers: int = 2, n_out: int = 1):
        super().__init__()
        if skip and not n_extra:
            raise ValueError("a skip path needs extra inputs (n_extra >= 1)")
        if n_out < 1:
            raise ValueError(f"n_out must be >= 1, got {n_out}")
        self.lstm = CoordinateLSTM(2 + n_extra, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, n_out)
        self.skip = nn.Linear(n_extra, n_out, bias=False) if skip else None
        if self.skip is not None:
            nn.init.zeros_(self.skip.weight)
        self.p, self.out_scale, self.n_extra, self.n_out = p, out_scale, n_extra, n_out

    def forward(self, x: torch.Tensor, state: list[torch.Tensor],
                extra: torch.Tensor | None = None):
        features = log_sign(x, self.p)
        if self.n_extra:
            if extra is None or extra.shape != (x.shape[0], self.n_extra):
                raise ValueError(f"expected extra inputs of shape ({x.shape[0]}, "
                                 f"{self.n_extra}), got "
                                 f"{None if extra is None else tuple(extra.shape)}")
            features = torch.cat([features, extra], dim=-1)
        h, state = self.lstm(features, state)
        out = self.out_scale * self.head(h)
        if self.skip is not None:
            out = out + self.skip(extra)
        return (out.squeeze(-1) if self.n_out == 1 else out), h, state


class UpdateLSTM(CoordinateNet):
    """m1: gradient coordinates (N,) -> updates (N,), or (N, n_out) log-steps (LearnedUpdate's
    mixed form)."""


class GroupLSTM(CoordinateNet):
    """m2: teleport-feature coordinates (N,) -> Lie-algebra coordinates T (N,).

    The caller then rescales each T_k to a fixed Frobenius norm (``tele_norm``, the paper's
    0.01) or, with tele_norm None, lets the network set the norm and only clips it at
    ``max_tele_norm`` (a guard against divergence, see teleport.py).
    """

    def __init__(
        self, hidden_size: int = 20, p: float = 10.0, out_scale: float = 0.01,
        tele_norm: float | None = 0.01, max_tele_norm: float = 0.1, n_extra: int = 0,
        skip: bool = False, num_layers: int = 2,
    ):
        super().__init__(hidden_size, p, out_scale, n_extra, skip, num_layers)
        self.tele_norm, self.max_tele_norm = tele_norm, max_tele_norm

    def normalize(self, T: torch.Tensor) -> torch.Tensor:
        if self.tele_norm is not None:
            return rescale_frobenius(T, self.tele_norm)
        return clip_frobenius(T, self.max_tele_norm)


class LrTeleLSTM(GroupLSTM):
    """GroupLSTM plus a step-size head: lr = lr_max * sigmoid(mean over coordinates of a
    Linear(h)), per problem, in (0, lr_max). The bias starts at the value giving ``lr_init``."""

    def __init__(self, *args, lr_max: float = 1e-3, lr_init: float = 3e-4, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 < lr_init < lr_max:
            raise ValueError(f"need 0 < lr_init < lr_max, got {lr_init}, {lr_max}")
        self.lr_head = nn.Linear(self.lstm.hidden_size, 1)
        self.lr_max = lr_max
        with torch.no_grad():
            self.lr_head.weight.mul_(0.1)
            self.lr_head.bias.fill_(math.log(lr_init / (lr_max - lr_init)))

    def step_size(self, h: torch.Tensor, batch: int) -> torch.Tensor:
        """h: (B * Q, H) top hidden states -> (B,) step sizes."""
        logits = self.lr_head(h).reshape(batch, -1).mean(dim=1)
        return self.lr_max * torch.sigmoid(logits)



def call_groups(
    net: CoordinateNet, xs: list[torch.Tensor], states: list[list[torch.Tensor]],
    extras: list[torch.Tensor | None] | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]]:
    """``net`` on the coordinates of several groups in one call: group i's inputs x_i (N_i,),
    LSTM state [h, c] ((layers, N_i, H) each) and extra inputs (N_i, n_extra) or None are
    concatenated along the coordinate axis with the other groups', and the outputs are split
    back. Returns per group (output (N_i,), top hidden state (N_i, H), new state).

    The net is coordinatewise, so each group gets what a call of its own would give, up to
    float rounding (a longer matrix product may sum in another order); a mixed batch thus
    steps each LSTM once per inner step instead of once per group. A single group is passed
    to the net as it is.
    """
    extras = [None] * len(xs) if extras is None else extras
    if len(xs) == 1:
        return [net(xs[0], states[0], extras[0])]
    sizes = [x.shape[0] for x in xs]
    state = [torch.cat(parts, dim=1) for parts in zip(*states)]
    extra = None if extras[0] is None else torch.cat(extras)
    out, h, new = net(torch.cat(xs), state, extra)
    new_states = [list(parts) for parts in zip(*(s.split(sizes, dim=1) for s in new))]
    return list(zip(out.split(sizes), h.split(sizes), new_states))
