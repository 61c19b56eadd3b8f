"""The learned optimizer: coordinatewise LSTMs m1 and m2 (docs/design.md section 5).

One small LSTM, shared by every coordinate, with its own state per coordinate: the coordinates of
all B trajectories are stacked on the LSTM's batch axis, so one call serves them all and nothing
depends on the number of parameters (a trained optimizer runs on any width and depth).

The networks live in networks.py (re-exported here):

- ``UpdateLSTM`` (m1): preprocessed gradient of each weight -> that weight's update.
- ``GroupLSTM`` (m2): preprocessed teleport feature G_ij -> T_ij of every hidden layer.
- ``LrTeleLSTM``: m2 plus a head whose mean over coordinates gives a positive, bounded step size
  for the next plain-GD step (as the reference's LSTM(lr,tele) returns "a step size for the next
  gradient descent step").

As inner-loop objects: ``LearnedUpdate`` (m1 as an update rule) and ``LearnedStepGD`` (GD at
LSTM(lr,tele)'s learned step size), in learned_update.py and re-exported here, and
``LearnedTeleport`` (m2 as a teleport.Teleport).
``LearnedOptimizer`` is the nn.Module that owns the networks and composes them (inner.Teleporting)
with each other or with a hand-designed teleport, by variant. ``LearnedUpdate.update_groups``
and ``LearnedTeleport.teleport_groups`` step several groups of problems (a mixed batch's
architectures, inner.inner_step_groups) with one LSTM call for all of them.
"""

from __future__ import annotations

import torch
from torch import nn

from .inner import LossGuard, State, StepContext, Teleporting
from .learned_update import (
    FORM_OUTPUTS,
    N_MOMENT_INPUTS,
    LearnedStepGD,
    LearnedUpdate,
    gradient_form,
)
from .mlp import mlp_loss
from .networks import (
    CoordinateLSTM,
    CoordinateNet,
    GroupLSTM,
    LrTeleLSTM,
    UpdateLSTM,
    call_groups,
    flatten_coords,
    rms_normalized,
    unflatten_coords,
)
from .preprocess import log_sign
from .symmetry import ACTIONS, apply_group, check_group, group_act
from .teleport import (
    BalanceTeleport,
    RandomTeleport,
    Schedule,
    balance_fully,
    balance_signal,
    teleport_feature,
    unit_curvature,
)

__all__ = [
    "VARIANTS",
    "CoordinateLSTM",
    "CoordinateNet",
    "GroupLSTM",
    "LearnedOptimizer",
    "LearnedStepGD",
    "LearnedTeleport",
    "LearnedUpdate",
    "LrTeleLSTM",
    "UpdateLSTM",
    "flatten_coords",
    "gradient_form",
    "rms_normalized",
    "unflatten_coords",
]

#: what m1's LSTM state does across a teleport
M1_STATE_ON_TELE = ("keep", "reset")
#: m2's input: the raw teleport feature, or each G_k over its RMS entry
TELE_INPUTS = ("raw", "normalized")
#: what tele_norm / max_tele_norm bound: each hidden layer's ||T_k||, or ||T|| over all of them
TELE_NORM_OVER = ("layer", "network")

#: variant name -> display name used in tables and plots
VARIANTS = {
    "update_tele": "LSTM(update,tele)",
    "update": "LSTM(update)",
    "lr_tele": "LSTM(lr,tele)",
    "update_random_tele": "LSTM(update)+random tele",
    "update_balance": "LSTM(update)+balance",
}


class LearnedTeleport:
    """m2 as a teleport: the teleport feature G (teleport.teleport_feature) of every hidden
    layer -> T_k through the GroupLSTM, normalized (GroupLSTM.normalize), then the group action
    W <- expm(T) . W (or the first-order control, ``action``). State: {"m2": LSTM state} and,
    for an LrTeleLSTM, {"lr": (B,) the step size of the next plain-GD steps}.

    ``balance_input``: m2 also reads the balance signal of each unit on T_ii
    (teleport.balance_signal); ``curvature_input``: the log of each unit's orbit curvature
    (teleport.unit_curvature, the paper's curvature of the minimum per unit), likewise.
    ``lookahead``: an m1 (LearnedUpdate) whose next update m2 looks
    through: it then also reads dlog L(W' + m1(grad L(W')))/dT at T = 0 (``lookahead_feature``).
    Records ``ctx.stats["tele_norm"]``, ||T|| over all hidden layers per problem.

    ``input`` "normalized": m2 reads each G_k divided by its RMS entry (the loss's scale, the
    width and the depth leave it unchanged); "raw": G as it is. ``norm_over`` "network": the
    GroupLSTM's tele_norm / max_tele_norm bound ||T|| over all hidden layers together, so that
    a deeper net is not moved further; "layer": each ||T_k||.

    ``group`` "gl" (T_k a d_k x d_k matrix, the action on the batch) or "diag" (t_k one number
    per hidden unit, g_k = exp(diag(t_k)), symmetry.apply_group: exact for every input, so the
    optimizee's function, and what it does on held-out data, does not change; m2 then reads
    dObj/dt_k, the diagonal of G_k, and the balance signal on t_k).
    """

    name = "learned tele"

    def __init__(self, net: GroupLSTM, *, balance_input: bool = False,
                 lookahead: LearnedUpdate | None = None, action: str = "exact",
                 input: str = "raw", norm_over: str = "layer", group: str = "gl",
                 curvature_input: bool = False):
        check_group(group)
        if group == "diag" and (lookahead is not None or action != "exact"):
            raise ValueError("the diag m2 has neither the lookahead input nor the first-order "
                             "action (both are gl's)")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        if input not in TELE_INPUTS:
            raise ValueError(f"tele input must be one of {TELE_INPUTS}, got {input!r}")
        if norm_over not in TELE_NORM_OVER:
            raise ValueError(f"tele_norm_over must be one of {TELE_NORM_OVER}, got "
                             f"{norm_over!r}")
        self.net, self.balance_input, self.lookahead, self.action = (
            net, balance_input, lookahead, action)
        self.input, self.norm_over, self.group = input, norm_over, group
        self.curvature_input = curvature_input

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def init_state(self, problems) -> State:
        like = problems.weights[0].to(self._dtype)
        B = problems.batch_size
        power = 2 if self.group == "gl" else 1  # T_k (d_k, d_k) or t_k (d_k,) per problem
        n = B * sum(w.shape[1] ** power for w in problems.weights[:-1])
        state: State = {"m2": self.net.lstm.init_state(n, like)}
        if isinstance(self.net, LrTeleLSTM):
            state["lr"] = self.net.step_size(like.new_zeros(B, self.net.lstm.hidden_size), B)
        return state

    def __call__(self, weights, state: State, ctx: StepContext):
        return self.teleport_groups([weights], [state], [ctx])[0]

    def teleport_groups(self, weights, states: list[State], ctxs: list[StepContext]):
        """``__call__`` for several groups in lockstep (one list entry each): the features, the
        normalization and the group actions per group, the GroupLSTM once on the entries of
        all groups' T (networks.call_groups)."""
        looks = (self.lookahead_features(weights, states, ctxs) if self.lookahead is not None
                 else [None] * len(weights))
        inputs = [self._inputs(w, ctx, look) for w, ctx, look in zip(weights, ctxs, looks)]
        flats = [flatten_coords(G) for G, _ in inputs]
        outs = call_groups(self.net, [flat.reshape(-1).to(self._dtype) for flat in flats],
                           [state["m2"] for state in states], [extra for _, extra in inputs])
        return [self._move(w, state, ctx, T.reshape(flat.shape), h, m2, [g.shape for g in G])
                for w, state, ctx, (T, h, m2), flat, (G, _) in
                zip(weights, states, ctxs, outs, flats, inputs)]

    def _inputs(self, weights, ctx: StepContext, look):
        """One group's m2 inputs: the features G_k and the extra inputs (N, n_extra) or None
        (``look``: its lookahead feature, or None)."""
        p = ctx.problems
        G = teleport_feature(weights, p.X, p.Y, p.slope, x_pinv=ctx.x_pinv, group=self.group)
        if self.input == "normalized":
            G = [rms_normalized(g, tuple(range(1, g.dim()))) for g in G]
        detached = [w.detach() for w in weights]

        def per_unit(signal):  # (B, d_k) per hidden layer -> one column, on T_ii under gl
            if self.group == "gl":  # 0 off the diagonal
                signal = [torch.diag_embed(s) for s in signal]
            return flatten_coords(signal).reshape(-1, 1)

        extra = []
        if self.balance_input:
            extra.append(per_unit(balance_signal(detached)))
        if self.curvature_input:
            extra.append(per_unit([k.log() for k in unit_curvature(detached)]))
        if look is not None:
            extra.append(log_sign(flatten_coords(look).reshape(-1), self.net.p))
        return G, (torch.cat(extra, dim=1).to(self._dtype) if extra else None)

    def _move(self, weights, state: State, ctx: StepContext, T, h, m2, shapes):
        """One group's teleport from m2's output T (B, N), top hidden state h and state m2."""
        p = ctx.problems
        Ts = self._normalize(unflatten_coords(T.to(weights[0].dtype), shapes))
        # ||T|| over all hidden layers together, per problem
        ctx.stats["tele_norm"] = torch.stack(
            [t.detach().pow(2).flatten(1).sum(1) for t in Ts]).sum(0).sqrt()
        new_state = {**state, "m2": m2}
        if isinstance(self.net, LrTeleLSTM):
            new_state["lr"] = self.net.step_size(h, p.batch_size)
        if self.group == "diag":
            return apply_group(weights, None, Ts, "diag"), new_state
        moved = group_act(weights, p.X, Ts, p.slope, x_pinv=ctx.x_pinv, action=self.action)
        return moved, new_state

    def _normalize(self, Ts: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.norm_over == "layer":
            if self.group == "diag":  # ||diag(t)||_F = ||t||
                return [self.net.normalize(t[:, None])[:, 0] for t in Ts]
            return [self.net.normalize(t) for t in Ts]
        # one norm over all hidden layers: rescale (or clip) the stacked T, per problem
        total = torch.stack([t.pow(2).flatten(1).sum(1) for t in Ts]).sum(0).sqrt()
        total = total.clamp_min(1e-30).view(-1, *[1] * (Ts[0].dim() - 1))
        if self.net.tele_norm is not None:
            return [t * (self.net.tele_norm / total) for t in Ts]
        return [t * (self.net.max_tele_norm / total).clamp_max(1.0) for t in Ts]

    def lookahead_feature(self, weights, state: State, ctx: StepContext) -> list[torch.Tensor]:
        """d log L(W' + m1(grad L(W')))/dT_k at T = 0, W' = expm(T) . W, for every hidden layer
        k: (B, d_k, d_k) each, detached (a first-order input, like G). m1 steps from its present
        state, whose update is then thrown away; the gradient flows through m1's update and
        through grad L(W') (a double backward)."""
        return self.lookahead_features([weights], [state], [ctx])[0]

    def lookahead_features(self, weights, states: list[State], ctxs: list[StepContext]):
        """``lookahead_feature`` of several groups (one list entry each), m1 called once on
        the coordinates of all of them."""
        with torch.enable_grad():
            Ts, moved, grads = [], [], []
            for w, ctx in zip(weights, ctxs):
                p = ctx.problems
                base = [x.detach() for x in w]
                T = [base[0].new_zeros(x.shape[0], x.shape[1], x.shape[1]).requires_grad_(True)
                     for x in base[:-1]]
                moved.append(group_act(base, p.X, T, p.slope, x_pinv=ctx.x_pinv,
                                       action=self.action))
                loss = mlp_loss(moved[-1], p.X, p.Y, p.slope)
                grads.append(torch.autograd.grad(loss.sum(), moved[-1], create_graph=True))
                Ts.append(T)
            proposals = self.lookahead.propose_groups(
                grads, [[s.detach() for s in state["m1"]] for state in states])
            aheads = []
            for (delta, *_), m, g, ctx in zip(proposals, moved, grads, ctxs):
                p = ctx.problems
                after = [w + d for w, d in zip(m, unflatten_coords(delta, [x.shape for x in g]))]
                aheads.append(mlp_loss(after, p.X, p.Y, p.slope).log().sum())
            # problems are independent: each group's T gets the gradient of its own term
            flat = [G.detach() for G in torch.autograd.grad(aheads, [t for T in Ts for t in T])]
        out, start = [], 0
        for T in Ts:
            out.append(flat[start:start + len(T)])
            start += len(T)
        return out


class LearnedOptimizer(nn.Module, Teleporting):
    """The learned optimizer of a variant: the nn.Module owning m1 (``update_net``, an
    UpdateLSTM) and m2 (``group_net``), composed as inner.Teleporting(rule, move, schedule).

    Variants (``VARIANTS``): "update_tele": m1 + a learned m2 (LearnedUpdate + LearnedTeleport);
    "update": m1 alone; "lr_tele": an LrTeleLSTM, whose learned step size drives plain GD
    (LearnedStepGD + LearnedTeleport); "update_random_tele" (the ablation of the learned
    direction): m1, then random teleports of norm ``tele_norm``, the norm the learned teleports
    are rescaled to (teleport.RandomTeleport; torch's global generator, which training
    checkpoints store); "update_balance": m1, then the closed-form balancing teleport
    (teleport.BalanceTeleport, docs/design.md section 8). State: {"m1": LSTM state, "m2": LSTM
    state, "lr": (B,) step size for lr_tele}.

    When to teleport: teleport.Schedule(``tele_every``, ``tele_until``): after the update of
    inner step t when t % tele_every == 0 and t < tele_until (None: the whole run); other steps
    skip m2 (and lr_tele keeps its last step size). ``tele_steps`` is tele_until's old name.

    ``balance_input``: m2 also reads, for every diagonal entry T_ii, the balance signal
    log(||column i of W_{k+1}|| / ||row i of W_k||) of unit i (0 for off-diagonal entries):
    the per-unit imbalance that a coordinatewise update cannot see (teleport.balance_signal).
    ``balance_skip`` (needs balance_input) adds to T_ii a learned multiple a * r_i of that
    signal, outside the LSTM and its output scale (whose saturating gates make a move of the
    size balancing needs hard to produce): a = 1/2 is the exact balancing move (r_i -> r_i -
    2 T_ii), a = 0 none; a starts at 0, so m2 has to find it by meta-training.
    ``curvature_input``: m2 also reads, for every T_ii (t_i under diag), log kappa_i, the
    curvature of unit i's rescaling orbit (teleport.unit_curvature): the paper's curvature of
    the minimum, per unit, which its generalization experiment moves along.
    ``lookahead_input``: m2 also reads, for every entry T_ij, the log-sign features of
    dlog L(W')/dT_ij at T = 0, where W' = expm(T) . W followed by m1's next update from its
    present state (LearnedTeleport.lookahead_feature): which way to move so that the update
    rule in use gains most on its next step, where G only says where the gradient is steeper.
    ``m1_state_on_tele``: "keep" m1's LSTM state across a teleport (its memory then refers to
    the coordinates before the move) or "reset" it to zeros after every teleport.
    ``tele_action``: "exact" (g = expm(T)) or "first_order" (the public reference's I + T with
    I - T as inverse, which moves the loss: the replication control).
    ``guard``: None, or the factor of an inner.LossGuard on every step (a step whose loss
    would exceed guard x the best loss so far falls back to a safe gradient step).
    ``update_input``, ``tele_input``, ``tele_norm_over``: LearnedUpdate's and LearnedTeleport's
    scale-free inputs and depth-free bound (the shipped checkpoints: "raw", "raw", "layer").
    ``update_form``, ``update_tilt``: what m1's output is (LearnedUpdate's ``form``: "direct",
    the update, in every shipped checkpoint; "gradient", the log-steps of a preconditioner of
    the gradient over its RMS, with base step ``update_scale`` and bound ``update_tilt``;
    "adam", the same along Adam's direction, which needs ``update_moments``; "mixed", both
    summed, two log-steps per coordinate); ``update_tilt_over``: the tilt bounds a log-step
    around the problem's mean ("problem") or its own layer's ("layer", LearnedUpdate's
    ``tilt_over``); ``update_tilt_first``: the first layer's tilt (None: ``update_tilt``;
    LearnedUpdate's ``tilt_first``).
    ``tele_group``: m2's group, "gl" (the shipped checkpoints) or "diag" (LearnedTeleport).
    ``update_moments``: m1 also reads Adam's normalized moments of every coordinate
    (LearnedUpdate's ``moments``; off in the shipped checkpoints).
    ``balance_first``: every run starts from its initial weights balanced
    (teleport.balance_fully, an exact diag move: inner.Teleporting's ``start``), in
    meta-training, evaluation and LearnedTorchOptimizer.start alike.
    ``hidden_size``, ``num_layers``: the size of m1's and m2's coordinatewise LSTMs (the
    shipped checkpoints: 20 and 2).
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
        tele_until: int | None = None,
        tele_every: int = 1,
        balance_input: bool = False,
        balance_skip: bool = False,
        lookahead_input: bool = False,
        m1_state_on_tele: str = "keep",
        tele_action: str = "exact",
        guard: float | None = None,
        update_input: str = "raw",
        update_form: str = "direct",
        update_tilt: float | None = None,
        tele_input: str = "raw",
        tele_norm_over: str = "layer",
        tele_group: str = "gl",
        num_layers: int = 2,
        curvature_input: bool = False,
        update_moments: bool = False,
        update_tilt_over: str = "problem",
        update_tilt_first: float | None = None,
        balance_first: bool = False,
        *,
        tele_steps: int | None = None,
    ):
        nn.Module.__init__(self)
        if tele_steps is not None:
            if tele_until is not None and tele_until != tele_steps:
                raise ValueError(f"tele_steps is tele_until's old name; got both, {tele_steps} "
                                 f"and {tele_until}")
            tele_until = tele_steps
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
        if update_moments and (variant == "lr_tele" or lookahead_input):
            raise ValueError("update_moments needs an m1 (not variant lr_tele) that m2 does "
                             "not look ahead with (lookahead_input)")
        if variant == "update_random_tele" and tele_norm is None:
            raise ValueError("variant 'update_random_tele' needs a fixed tele_norm (the norm of "
                             "its random teleports), got None")
        if tele_action not in ACTIONS:
            raise ValueError(f"tele_action must be one of {ACTIONS}, got {tele_action!r}")
        if tele_every < 1:
            raise ValueError(f"tele_every must be >= 1, got {tele_every}")
        self.variant = variant
        self.tele_norm = tele_norm
        self.tele_until, self.tele_every = tele_until, tele_every
        self.balance_input, self.balance_skip = balance_input, balance_skip
        self.lookahead_input, self.m1_state_on_tele = lookahead_input, m1_state_on_tele
        self.tele_action = tele_action
        # the gradient form's outputs are log-steps, update_scale its base step
        self.update_net = (
            UpdateLSTM(hidden_size, preprocess_p,
                       1.0 if update_form != "direct" else update_scale,
                       n_extra=N_MOMENT_INPUTS if update_moments else 0, num_layers=num_layers,
                       n_out=FORM_OUTPUTS.get(update_form, 1))  # LearnedUpdate names a bad form
            if variant != "lr_tele" else None
        )
        group_kwargs = dict(hidden_size=hidden_size, p=preprocess_p, out_scale=tele_scale,
                            tele_norm=tele_norm, max_tele_norm=max_tele_norm,
                            n_extra=(int(balance_input) + int(curvature_input)
                                     + 2 * int(lookahead_input)),
                            skip=balance_skip, num_layers=num_layers)
        if variant == "update_tele":
            self.group_net = GroupLSTM(**group_kwargs)
        elif variant == "lr_tele":
            self.group_net = LrTeleLSTM(**group_kwargs, lr_max=lr_max, lr_init=lr_init)
        else:
            self.group_net = None
        self.update_input, self.tele_input, self.tele_norm_over = (
            update_input, tele_input, tele_norm_over)
        self.update_moments = update_moments
        self.tele_group = check_group(tele_group)
        rule = (LearnedStepGD() if self.update_net is None
                else LearnedUpdate(self.update_net, input=update_input, form=update_form,
                                   step=update_scale, tilt=update_tilt,
                                   moments=update_moments, tilt_over=update_tilt_over,
                                   tilt_first=update_tilt_first))
        if self.group_net is not None:
            look = rule if lookahead_input else None
            move = LearnedTeleport(self.group_net, balance_input=balance_input,
                                   curvature_input=curvature_input, lookahead=look,
                                   action=tele_action, input=tele_input,
                                   norm_over=tele_norm_over, group=tele_group)
        elif variant == "update_random_tele":
            move = RandomTeleport(tele_norm, tele_action, group=tele_group)
        elif variant == "update_balance":
            move = BalanceTeleport()
        else:
            move = None
        Teleporting.__init__(self, rule, move, Schedule(tele_every, tele_until),
                             rule_state_on_teleport=m1_state_on_tele, name=VARIANTS[variant],
                             guard=None if guard is None else LossGuard(guard),
                             start=balance_fully if balance_first else None)
        self.balance_first = bool(balance_first)

    @property
    def tele_steps(self) -> int | None:
        """tele_until's old name."""
        return self.tele_until

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def lookahead_feature(self, weights, state: State, ctx: StepContext) -> list[torch.Tensor]:
        """m2's lookahead input (LearnedTeleport.lookahead_feature) for m1 from ``state``."""
        if not (isinstance(self.move, LearnedTeleport) and self.move.lookahead is not None):
            raise ValueError("lookahead_feature needs a learned m2 with lookahead_input")
        return self.move.lookahead_feature(weights, state, ctx)
