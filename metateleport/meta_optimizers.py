"""Coordinatewise LSTM meta-optimizers (design.md section 5).

One small LSTM, shared by every coordinate, with its own state per coordinate: the coordinates of
all B trajectories are stacked on the LSTM's batch axis, so one call serves them all and nothing
depends on the number of parameters (a trained optimizer runs on any width and depth).

- ``UpdateLSTM`` (m1): preprocessed gradient of each weight -> that weight's update.
- ``GroupLSTM`` (m2): preprocessed teleport feature G_ij -> T_ij of every hidden layer.
- ``LrTeleLSTM``: m2 plus a head whose mean over coordinates gives a positive, bounded step size
  for the next plain-GD step (as the reference's LSTM(lr,tele) returns "a step size for the next
  gradient descent step").

``LearnedOptimizer`` puts them together as an ``InnerOptimizer`` for the shared stepping loop.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .optimizers import State, StepContext, gd_update, on_schedule
from .preprocess import log_sign
from .symmetry import ACTIONS, group_act
from .tasks import mlp_loss
from .teleport import (
    balance_signal,
    balance_teleport,
    clip_frobenius,
    random_teleport,
    rescale_frobenius,
    teleport_feature,
)

__all__ = [
    "VARIANTS",
    "CoordinateLSTM",
    "CoordinateNet",
    "GroupLSTM",
    "LearnedOptimizer",
    "LrTeleLSTM",
    "UpdateLSTM",
    "flatten_coords",
    "unflatten_coords",
]

#: what m1's LSTM state does across a teleport
M1_STATE_ON_TELE = ("keep", "reset")

#: variant name -> display name used in tables and plots
VARIANTS = {
    "update_tele": "LSTM(update,tele)",
    "update": "LSTM(update)",
    "lr_tele": "LSTM(lr,tele)",
    "update_random_tele": "LSTM(update)+random tele",
    "update_balance": "LSTM(update)+balance",
}


class CoordinateLSTM(nn.Module):
    """A 2-layer LSTM applied independently to N coordinates, one time step per call.

    forward(x (N, in_features), state [h (layers, N, H), c (layers, N, H)])
        -> (top-layer h (N, H), new state).

    One ``nn.LSTM`` call on a length-1 sequence steps both layers; on CPU it runs oneDNN's
    fused RNN kernels, 1.4x faster forward+backward than two nn.LSTMCell at N = 6400, H = 20
    (python -m metateleport.bench). tests/test_meta_optimizers.py checks it against LSTMCells.
    """

    def __init__(self, in_features: int = 2, hidden_size: int = 20, num_layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(in_features, hidden_size, num_layers=num_layers)
        self.hidden_size, self.num_layers = hidden_size, num_layers

    def init_state(self, n: int, like: torch.Tensor) -> list[torch.Tensor]:
        zeros = like.new_zeros(self.num_layers, n, self.hidden_size)
        return [zeros, zeros]

    def forward(self, x: torch.Tensor, state: list[torch.Tensor]):
        out, (h, c) = self.lstm(x.unsqueeze(0), (state[0], state[1]))
        return out[0], [h, c]


def flatten_coords(mats: list[torch.Tensor]) -> torch.Tensor:
    """[(B, a_k, b_k)] -> (B, sum_k a_k b_k): every coordinate of a problem in one row."""
    return torch.cat([m.reshape(m.shape[0], -1) for m in mats], dim=1)


def unflatten_coords(flat: torch.Tensor, like: list[torch.Size]) -> list[torch.Tensor]:
    """Inverse of ``flatten_coords`` for matrices of shapes ``like`` ((B, a_k, b_k) each)."""
    sizes = [s[1] * s[2] for s in like]
    return [part.reshape(s) for part, s in zip(flat.split(sizes, dim=1), like)]


class CoordinateNet(nn.Module):
    """The shared body of m1 and m2: coordinates x (N,) -> out_scale * Linear(LSTM(log_sign(x))).

    forward(x (N,), state, extra (N, n_extra) or None) -> (output (N,), top hidden state (N, H),
    new state). ``extra`` holds further per-coordinate inputs, fed to the LSTM unpreprocessed
    beside the two log-sign features of x. With ``skip``, the output also gets a learned linear
    term of ``extra`` that bypasses the LSTM and ``out_scale`` (its weights start at 0):
    output = out_scale * head(h) + skip(extra).
    """

    def __init__(self, hidden_size: int = 20, p: float = 10.0, out_scale: float = 0.1,
                 n_extra: int = 0, skip: bool = False):
        super().__init__()
        if skip and not n_extra:
            raise ValueError("a skip path needs extra inputs (n_extra >= 1)")
        self.lstm = CoordinateLSTM(2 + n_extra, hidden_size)
        self.head = nn.Linear(hidden_size, 1)
        self.skip = nn.Linear(n_extra, 1, bias=False) if skip else None
        if self.skip is not None:
            nn.init.zeros_(self.skip.weight)
        self.p, self.out_scale, self.n_extra = p, out_scale, n_extra

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
        out = self.out_scale * self.head(h).squeeze(-1)
        if self.skip is not None:
            out = out + self.skip(extra).squeeze(-1)
        return out, h, state


class UpdateLSTM(CoordinateNet):
    """m1: gradient coordinates (N,) -> updates (N,)."""


class GroupLSTM(CoordinateNet):
    """m2: teleport-feature coordinates (N,) -> Lie-algebra coordinates T (N,).

    The caller then rescales each T_k to a fixed Frobenius norm (``tele_norm``, the paper's
    0.01) or, with tele_norm None, lets the network set the norm and only clips it at
    ``max_tele_norm`` (a guard against divergence, see teleport.py).
    """

    def __init__(
        self, hidden_size: int = 20, p: float = 10.0, out_scale: float = 0.01,
        tele_norm: float | None = 0.01, max_tele_norm: float = 0.1, n_extra: int = 0,
        skip: bool = False,
    ):
        super().__init__(hidden_size, p, out_scale, n_extra, skip)
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


class LearnedOptimizer(nn.Module):
    """An InnerOptimizer made of an optional m1 (UpdateLSTM) and an optional m2.

    variant "update_tele": m1 + GroupLSTM; "update": m1 only; "lr_tele": LrTeleLSTM, whose
    learned step size drives plain GD; "update_random_tele" (the ablation of the learned
    direction): m1, then after every update a random teleport, T_k with i.i.d. normal entries
    rescaled to ||T_k||_F = ``tele_norm``, the norm the learned teleports are rescaled to. Its
    random numbers come from torch's global generator (seed it to repeat a run; training
    checkpoints store its state); "update_balance": m1, then the closed-form balancing teleport
    (teleport.balance_teleport), the hand-designed teleport of design.md section 8. State:
    {"m1": LSTM state, "m2": LSTM state, "lr": (B,) step size for lr_tele}.

    When to teleport: after the update of inner step t when t % ``tele_every`` == 0 and
    t < ``tele_steps`` (None: the whole run); other steps skip m2 (and lr_tele keeps its last
    step size).

    ``balance_input``: m2 also reads, for every diagonal entry T_ii, the balance signal
    log(||column i of W_{k+1}|| / ||row i of W_k||) of unit i (0 for off-diagonal entries):
    the per-unit imbalance that a coordinatewise update cannot see (teleport.balance_signal).
    ``balance_skip`` (needs balance_input) adds to T_ii a learned multiple a * r_i of that
    signal, outside the LSTM and its output scale: a = 1/2 is the exact balancing move
    (r_i -> r_i - 2 T_ii), a = 0 none, and a starts at 0, so m2 has to find it by meta-training.
    Inside the LSTM the signal passes saturating gates and the small output scale, which makes a
    move of the size balancing needs (|T_ii| up to ~2.3 at unit span 10) hard to produce.
    ``lookahead_input``: m2 also reads, for every entry T_ij, the log-sign features of
    dlog L(W')/dT_ij at T = 0, where W' = expm(T) . W followed by m1's next update from its
    present state (``lookahead_feature``): which way to move so that the update rule in use
    gains most on its next step, where G only says where the gradient is steeper.
    ``m1_state_on_tele``: "keep" m1's LSTM state across a teleport (its memory then refers to
    the coordinates before the move) or "reset" it to zeros after every teleport.
    ``tele_action``: "exact" (g = expm(T)) or "first_order" (the public reference's I + T with
    I - T as inverse, which moves the loss: the replication control).

    Every teleport records in ``ctx.stats["tele_loss_change"]`` the relative loss change that
    the move alone caused, (L(after) - L(before)) / L(before), per problem: ~1e-7 for the exact
    action, the tell-tale of a first-order one.
    """

    def __init__(
        self,
        variant: str = "update_tele",
        hidden_size: int = 20,
        preprocess_p: float = 10.0,
        update_scale: float = 0.1,
        tele_scale: float = 0.01,
        tele_norm: float | None = 0.01,
        max_tele_norm: float = 0.1,
        lr_max: float = 1e-3,
        lr_init: float = 3e-4,
        tele_steps: int | None = None,
        tele_every: int = 1,
        balance_input: bool = False,
        balance_skip: bool = False,
        lookahead_input: bool = False,
        m1_state_on_tele: str = "keep",
        tele_action: str = "exact",
    ):
        super().__init__()
        if balance_skip and not balance_input:
            raise ValueError("balance_skip needs balance_input (it is a path from that input)")
        if lookahead_input and variant != "update_tele":
            raise ValueError("lookahead_input needs variant 'update_tele' (a learned m2 that "
                             f"reads it and an m1 to look ahead with), got {variant!r}")
        if m1_state_on_tele not in M1_STATE_ON_TELE:
            raise ValueError(f"m1_state_on_tele must be one of {M1_STATE_ON_TELE}, got "
                             f"{m1_state_on_tele!r}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; allowed: {list(VARIANTS)}")
        if variant == "update_random_tele" and tele_norm is None:
            raise ValueError("variant 'update_random_tele' needs a fixed tele_norm (the norm of "
                             "its random teleports), got None")
        if tele_action not in ACTIONS:
            raise ValueError(f"tele_action must be one of {ACTIONS}, got {tele_action!r}")
        if tele_every < 1:
            raise ValueError(f"tele_every must be >= 1, got {tele_every}")
        self.variant = variant
        self.name = VARIANTS[variant]
        self.tele_norm = tele_norm
        self.tele_steps, self.tele_every = tele_steps, tele_every
        self.balance_input, self.balance_skip = balance_input, balance_skip
        self.lookahead_input, self.m1_state_on_tele = lookahead_input, m1_state_on_tele
        self.tele_action = tele_action
        self.update_net = (
            UpdateLSTM(hidden_size, preprocess_p, update_scale) if variant != "lr_tele" else None
        )
        group_kwargs = dict(hidden_size=hidden_size, p=preprocess_p, out_scale=tele_scale,
                            tele_norm=tele_norm, max_tele_norm=max_tele_norm,
                            n_extra=int(balance_input) + 2 * int(lookahead_input),
                            skip=balance_skip)
        if variant == "update_tele":
            self.group_net = GroupLSTM(**group_kwargs)
        elif variant == "lr_tele":
            self.group_net = LrTeleLSTM(**group_kwargs, lr_max=lr_max, lr_init=lr_init)
        else:
            self.group_net = None

    def init_state(self, problems) -> State:
        like = problems.weights[0].to(self._dtype)
        B = problems.batch_size
        state: State = {}
        if self.update_net is not None:
            n = B * sum(w.shape[1] * w.shape[2] for w in problems.weights)
            state["m1"] = self.update_net.lstm.init_state(n, like)
        if self.group_net is not None:
            n = B * sum(w.shape[1] ** 2 for w in problems.weights[:-1])
            state["m2"] = self.group_net.lstm.init_state(n, like)
        if isinstance(self.group_net, LrTeleLSTM):
            h0 = like.new_zeros(B, self.group_net.lstm.hidden_size)
            state["lr"] = self.group_net.step_size(h0, B)
        return state

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def update(self, weights, grads, state: State, ctx: StepContext):
        if self.update_net is None:
            ctx.stats["lr"] = state["lr"]
            return gd_update(grads, state["lr"].to(grads[0].dtype)), state
        flat = flatten_coords(grads)
        delta, _, m1 = self.update_net(flat.reshape(-1).to(self._dtype), state["m1"])
        delta = delta.reshape(flat.shape).to(grads[0].dtype)
        ctx.stats["update_norm"] = delta.detach().norm(dim=1)
        return unflatten_coords(delta, [g.shape for g in grads]), {**state, "m1": m1}

    def teleport(self, weights, state: State, ctx: StepContext):
        if self.variant == "update" or not on_schedule(ctx.t, self.tele_every, self.tele_steps):
            return weights, state
        weights, state = self._teleport(weights, state, ctx)
        if self.m1_state_on_tele == "reset" and "m1" in state:
            state = {**state, "m1": [torch.zeros_like(s) for s in state["m1"]]}
        return weights, state

    def _teleport(self, weights, state: State, ctx: StepContext):
        p = ctx.problems
        if self.variant == "update_balance":
            return self._moved(weights, balance_teleport(weights), ctx), state
        if self.variant == "update_random_tele":
            moved = random_teleport(weights, p.X, self.tele_norm, slope=p.slope,
                                    x_pinv=ctx.x_pinv, action=self.tele_action)
            return self._moved(weights, moved, ctx), state
        G = teleport_feature(weights, p.X, p.Y, p.slope, x_pinv=ctx.x_pinv)
        flat = flatten_coords(G)
        extra = []
        if self.balance_input:
            r = balance_signal([w.detach() for w in weights])
            extra.append(flatten_coords([torch.diag_embed(rk) for rk in r]).reshape(-1, 1))
        if self.lookahead_input:
            look = self.lookahead_feature(weights, state, ctx)
            extra.append(log_sign(flatten_coords(look).reshape(-1), self.group_net.p))
        extra = torch.cat(extra, dim=1).to(self._dtype) if extra else None
        T, h, m2 = self.group_net(flat.reshape(-1).to(self._dtype), state["m2"], extra)
        Ts = [self.group_net.normalize(t) for t in
              unflatten_coords(T.reshape(flat.shape).to(weights[0].dtype), [g.shape for g in G])]
        # ||T|| over all hidden layers together, per problem
        ctx.stats["tele_norm"] = torch.stack(
            [t.detach().pow(2).sum(dim=(1, 2)) for t in Ts]).sum(0).sqrt()
        new_state = {**state, "m2": m2}
        if isinstance(self.group_net, LrTeleLSTM):
            new_state["lr"] = self.group_net.step_size(h, p.batch_size)
        moved = group_act(weights, p.X, Ts, p.slope, x_pinv=ctx.x_pinv, action=self.tele_action)
        return self._moved(weights, moved, ctx), new_state

    def lookahead_feature(self, weights, state: State, ctx: StepContext) -> list[torch.Tensor]:
        """d log L(W' + m1(grad L(W')))/dT_k at T = 0, W' = expm(T) . W, for every hidden layer
        k: (B, d_k, d_k) each, detached (a first-order input, like G). m1 steps from its present
        state, whose update is then thrown away; the gradient flows through m1's update and
        through grad L(W') (a double backward)."""
        p = ctx.problems
        with torch.enable_grad():
            base = [w.detach() for w in weights]
            Ts = [base[0].new_zeros(w.shape[0], w.shape[1], w.shape[1]).requires_grad_(True)
                  for w in base[:-1]]
            moved = group_act(base, p.X, Ts, p.slope, x_pinv=ctx.x_pinv,
                              action=self.tele_action)
            loss = mlp_loss(moved, p.X, p.Y, p.slope)
            grads = torch.autograd.grad(loss.sum(), moved, create_graph=True)
            flat = flatten_coords(grads)
            m1_state = [s.detach() for s in state["m1"]]
            delta, _, _ = self.update_net(flat.reshape(-1).to(self._dtype), m1_state)
            deltas = unflatten_coords(delta.reshape(flat.shape).to(flat.dtype),
                                      [g.shape for g in grads])
            after = [w + d for w, d in zip(moved, deltas)]
            ahead = mlp_loss(after, p.X, p.Y, p.slope).log().sum()
            return [g.detach() for g in torch.autograd.grad(ahead, Ts)]

    @staticmethod
    def _moved(before, after, ctx: StepContext):
        """Record the relative loss change caused by the teleport alone; return ``after``."""
        with torch.no_grad():
            p = ctx.problems
            l0 = mlp_loss([w.detach() for w in before], p.X, p.Y, p.slope)
            l1 = mlp_loss([w.detach() for w in after], p.X, p.Y, p.slope)
            ctx.stats["tele_loss_change"] = (l1 - l0) / l0
        return after
