"""Trained metateleport optimizers where ``torch.optim.Adam`` goes (docs/design.md sections 5-6):
the torch.optim face of learned.LearnedOptimizer.

    opt = LearnedTorchOptimizer(model.parameters(), checkpoint="checkpoints/update_tele.pt")
    opt.start(model)                  # balances the model if the checkpoint starts balanced
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()                    # m1 on every coordinate of every parameter
        opt.teleport(model, x, y)     # m2's group element (or the checkpoint's hand-designed one)

``step`` is the coordinatewise update rule m1 of a checkpoint: it reads ``p.grad`` of any
parameter (weights, biases, convolutions, embeddings) and keeps each parameter's LSTM state in
``opt.state[p]``. ``teleport`` moves a LeakyReLU MLP built from nn.Linear layers along the loss
level set of one batch, with the exact group action of symmetry.py. Both are the very objects
of the batched path (LearnedOptimizer's networks and teleport, the teleport.Teleport objects), so
on the bundled task the two give the same trajectory (tests/test_optim.py). ``LearnedOpt`` is
this class's old name.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_optimizer
from .inner import LossGuard, StepContext, starting_weights
from .learned import LearnedOptimizer, LrTeleLSTM, rms_normalized
from .learned_update import init_moments, moment_inputs, reset_moments, transport_moments
from .mlp import mlp_forward
from .modules import ModuleSpec, inspect_module, module_weights, write_weights
from .networks import fused_inference
from .symmetry import RankError, check_group
from .tasks import Problems
from .teleport import HAND_TELEPORTS, make_teleport
from .teleporter import batch_problem, max_exact_batch

__all__ = ["DEFAULT_CHECKPOINT", "TELEPORT_KINDS", "TELE_TOLERANCE", "LearnedOpt",
           "LearnedTorchOptimizer"]

#: what ``teleport`` may apply: the checkpoint's own teleport, or a hand-designed one by name
TELEPORT_KINDS = ("checkpoint", *HAND_TELEPORTS)
#: key of the state shared by all parameters (step count; LSTM(lr,tele)'s step size)
_SHARED = "learned"
#: under the guard, a teleport that moves the batch's outputs by more than this (relative to
#: their largest entry; float32 rounding gives ~1e-6) is refused
TELE_TOLERANCE = 1e-3
#: the checkpoint used when none is given: the generalist LSTM(update), meta-trained over the
#: task distribution with the loss guard (docs/results.md, "The generalist")
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "general_update.pt"


class LearnedTorchOptimizer(torch.optim.Optimizer):
    """A learned optimizer (LSTM(update), LSTM(update,tele), LSTM(lr,tele), ...) as a
    torch.optim.Optimizer.

    Args:
        params: parameters or param groups, as for any torch.optim optimizer.
        checkpoint: a params checkpoint (``checkpoints/*.pt``, a run's ``params.pt``), or
        learned: an already built ``LearnedOptimizer`` (its meta-parameters are not copied);
            neither: ``DEFAULT_CHECKPOINT``, the generalist LSTM(update) with its guard.
        lr: a multiplier of the learned update, 1 (the default) being the update as
            meta-trained; a per-group option, so that torch.optim.lr_scheduler works.
        guard: "checkpoint" (the default: the checkpoint's model.guard, the guard it
            meta-trained with or, for a generalist shipped with another, that one), a factor
            (a guard with it) or None (no guard).
        fused: step m1's and m2's LSTMs with networks.fused_inference (the default: 2.5x
            faster on CPU, nn.LSTM's kernel to float rounding) or with nn.LSTM's kernel
            (False: bit for bit the batched path's trajectories).

    The guard (inner.LossGuard, on the torch.optim side): a step whose gradients are not all
    finite leaves the parameters as they were. With a ``closure`` (which re-evaluates the loss
    and its gradients, as for torch.optim.LBFGS), a step whose loss would exceed factor x the
    best loss so far, or is not finite, is undone and replaced by the guard's fallback: plain
    gradient descent from the old point with lr = eta L / ||g||^2, halved until the loss does
    not rise (else no move). ``opt.state["learned"]["guard_refused"]`` counts refused steps.

    ``step()``: every parameter with a gradient moves by lr * m1(p.grad), one LSTM call over
    the coordinates of all of them (LSTM(lr,tele): by -lr * s * p.grad, s the step size its m2
    set at the last teleport). ``opt.state[p]`` holds p's m1 state (and a hidden layer's
    weight m2's state of that layer), ``opt.state["learned"]`` the step count and
    LSTM(lr,tele)'s step size; ``state_dict()`` holds all of it, so a run resumes exactly.
    The meta-parameters follow the parameters' device and run in their own dtype (the
    checkpoint's), as in the batched path. ``start(model)`` before the first step.
    """

    def __init__(self, params: Iterable, checkpoint: str | Path | None = None, *,
                 learned: LearnedOptimizer | None = None, lr: float = 1.0,
                 guard: float | str | None = "checkpoint", fused: bool = True):
        if checkpoint is not None and learned is not None:
            raise ValueError("pass one of checkpoint= (a path) and learned= (a "
                             "LearnedOptimizer), not both")
        if checkpoint is None and learned is None:
            checkpoint = DEFAULT_CHECKPOINT
            if not checkpoint.is_file():
                raise FileNotFoundError(
                    f"no checkpoint given and the default one, {checkpoint}, is missing (it "
                    "ships in the repository's checkpoints/): pass checkpoint= a params file")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr (a multiplier of the learned update) must be a finite number "
                             f">= 0, got {lr!r}")
        super().__init__(params, {"lr": float(lr)})
        if learned is None:
            learned, meta = load_optimizer(checkpoint)
            self.metadata = meta
        else:
            self.metadata = {"variant": learned.variant}
        self.learned = learned.eval()
        self.fused = bool(fused)
        if guard == "checkpoint":
            self.guard = learned.guard
        elif guard is None:
            self.guard = None
        elif isinstance(guard, (int, float)) and not isinstance(guard, bool):
            self.guard = LossGuard(float(guard))
        else:
            raise ValueError(f"guard must be 'checkpoint', a factor >= 1 or None, got {guard!r}")

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        # torch.optim casts a parameter's state to the parameter's dtype; the LSTM states live
        # in the meta-parameters' dtype (a float64 model stepped by a float32 checkpoint)
        for st in self.state.values():
            for name in ("m1", "m2"):
                if name in st:
                    st[name] = [s.to(self._dtype) for s in st[name]]
            if "m1_moments" in st:
                st["m1_moments"] = {k: v.to(self._dtype) for k, v in st["m1_moments"].items()}

    @property
    def variant(self) -> str:
        return self.learned.variant

    def _shared(self, like: torch.Tensor) -> dict:
        shared = self.state[_SHARED]
        if not shared:
            shared["step"] = 0
            net = self.learned.group_net
            if isinstance(net, LrTeleLSTM):
                h0 = torch.zeros(1, net.lstm.hidden_size, dtype=self._dtype, device=like.device)
                shared["step_size"] = net.step_size(h0, 1)[0]
        return shared

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.learned.parameters()).dtype

    def _follow(self, device: torch.device) -> None:
        if next(self.learned.parameters()).device != device:
            self.learned.to(device)

    def _m1_state(self, p: torch.Tensor) -> list[torch.Tensor]:
        state = self.state[p]
        if "m1" not in state:
            like = torch.empty(0, dtype=self._dtype, device=p.device)
            state["m1"] = self.learned.update_net.lstm.init_state(p.numel(), like)
        return state["m1"]

    @torch.no_grad()
    def start(self, model: nn.Module) -> bool:
        """Call once, before the first step: a checkpoint meta-trained from balanced starts
        (model.balance_first) balances ``model`` (a LeakyReLU MLP as for ``teleport``) in
        place, as its runs started in meta-training (teleport.balance_fully, a per-unit
        rescaling: the same function of every input); another leaves it. Returns whether
        the model was moved."""
        steps = self.state[_SHARED].get("step", 0)
        if steps > 0:
            raise RuntimeError(f"start() moves the initial weights: call it before the first "
                               f"step, not after {steps}")
        if self.learned.start is None:
            return False
        spec = inspect_module(model, allow_bias=True)
        self._check_owned(spec)
        write_weights(spec, starting_weights(self.learned, module_weights(spec)))
        self._shared(spec.linears[0].weight)["started"] = True
        return True

    def _check_owned(self, spec: ModuleSpec) -> list[torch.Tensor]:
        """The Linear parameters of ``spec``, each checked to be one this optimizer steps."""
        mine = {id(p) for group in self.param_groups for p in group["params"]}
        params = [p for lin in spec.linears for p in (lin.weight, lin.bias) if p is not None]
        if any(id(p) not in mine for p in params):
            raise ValueError("the model's Linear parameters are not all in this optimizer's "
                             "param groups: pass the model whose parameters it steps")
        return params

    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        with fused_inference(self.fused):
            return self._closure_step(closure)

    @torch.no_grad()
    def _closure_step(self, closure: Callable[[], torch.Tensor] | None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        todo = [(p, group["lr"]) for group in self.param_groups for p in group["params"]
                if p.grad is not None]
        if not todo:
            return loss
        for p, _ in todo:
            if p.grad.is_sparse:
                raise RuntimeError("LearnedTorchOptimizer does not support sparse gradients "
                                   "(use nn.Embedding(..., sparse=False))")
        devices = {p.device for p, _ in todo}
        if len(devices) > 1:
            raise RuntimeError(f"LearnedTorchOptimizer needs every parameter on one device, "
                               f"got {sorted(map(str, devices))}")
        self._follow(todo[0][0].device)
        shared = self._shared(todo[0][0])
        if shared["step"] == 0 and self.learned.start is not None and not shared.get("started"):
            warnings.warn("the checkpoint meta-trained from balanced initial weights "
                          "(model.balance_first): call opt.start(model) before the first step, "
                          "or it steps from a start it never saw", stacklevel=3)
        if self.guard is not None:
            return self._guarded_step(todo, loss, closure)
        self._step(todo)
        return loss

    def _step(self, todo: list[tuple[torch.Tensor, float]]) -> None:
        """The learned update of every parameter in ``todo`` ((parameter, lr) pairs)."""
        shared = self._shared(todo[0][0])
        if self.learned.update_net is None:
            for p, lr in todo:
                p.add_(p.grad, alpha=-lr * float(shared["step_size"]))
        else:
            self._m1_step(todo)
        shared["step"] += 1

    def _guarded_step(self, todo, loss, closure):
        """The learned step under the guard (see the class docstring)."""
        shared = self._shared(todo[0][0])
        shared.setdefault("guard_refused", 0)
        if not all(bool(torch.isfinite(p.grad).all()) for p, _ in todo):
            shared["guard_refused"] += 1
            shared["step"] += 1
            return loss
        if closure is None:
            self._step(todo)
            return loss
        def write(weights) -> None:
            for (p, _), w in zip(todo, weights):
                p.copy_(w[0])

        def loss_at(weights) -> tuple[torch.Tensor, None]:
            write(weights)  # the closure evaluates the model as its parameters are
            with torch.enable_grad():
                return closure().detach().reshape(1), None

        # the model is one problem of inner.LossGuard (B = 1)
        l0 = loss.detach().reshape(1)
        best = torch.minimum(shared.get("guard_best", torch.full_like(l0, math.inf)), l0)
        shared["guard_best"] = best
        old = [p.detach().clone()[None] for p, _ in todo]
        grads = [p.grad.detach().clone()[None] for p, _ in todo]
        self._step(todo)
        with torch.enable_grad():
            l1 = closure().detach().reshape(1)
        if not bool(self.guard.refuses(l1, best)):
            return loss
        shared["guard_refused"] += 1
        lr = self.guard.fallback_step_size(old, grads, l0, loss_at)
        write([w - lr * g for w, g in zip(old, grads)])
        return loss

    def _m1_step(self, todo: list[tuple[torch.Tensor, float]]) -> None:
        """m1 on the coordinates of all parameters at once (it is coordinatewise, so one
        batched call gives each coordinate what a call of its own would)."""
        grads = torch.cat([p.grad.reshape(-1).to(self._dtype) for p, _ in todo])
        sizes = [p.numel() for p, _ in todo]
        extra = None
        if self.learned.update_moments:
            parts = [self._m1_moments(p) for p, _ in todo]
            # each parameter's own step count (one that got its first gradient late has fewer)
            extra, moments = moment_inputs(grads, {
                "m": torch.cat([mo["m"] for mo in parts]),
                "v": torch.cat([mo["v"] for mo in parts]),
                "count": torch.cat([mo["count"].expand(n) for mo, n in zip(parts, sizes)])})
            for (p, _), mo, m, v in zip(todo, parts, moments["m"].split(sizes),
                                        moments["v"].split(sizes)):
                self.state[p]["m1_moments"] = {"m": m, "v": v, "count": mo["count"] + 1}
        if self.learned.update_input == "rms":
            grads = rms_normalized(grads, 0)  # the batched path's: the model is one problem
        states = [self._m1_state(p) for p, _ in todo]
        state = [torch.cat([s[i] for s in states], dim=1) for i in range(2)]
        delta, _, new = self.learned.update_net(grads, state, extra)
        delta = self.learned.rule.shape(delta, self.learned.rule.direction(grads, extra),
                                        _layer_sizes([p for p, _ in todo]))
        for (p, lr), d, h, c in zip(todo, delta.split(sizes), new[0].split(sizes, dim=1),
                                    new[1].split(sizes, dim=1)):
            p.add_(d.reshape(p.shape).to(p.dtype), alpha=lr)
            self.state[p]["m1"] = [h, c]

    def _m1_moments(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state[p]
        if "m1_moments" not in state:
            state["m1_moments"] = init_moments(
                torch.zeros(p.numel(), dtype=self._dtype, device=p.device))
        return state["m1_moments"]

    def teleport(self, model: nn.Module, inputs: torch.Tensor,
                 targets: torch.Tensor | None = None, kind: str = "checkpoint",
                 norm: float = 0.01, group: str | None = None) -> dict[str, float]:
        """Move ``model`` along the level set of its loss on the batch ``inputs``.

        model: a LeakyReLU MLP of nn.Linear layers (with or without biases, one common slope),
            taking rows as samples like ``model(inputs)``; its parameters must be in this
            optimizer. inputs: (n, d_0). targets: (n, d_L) regression targets, or (n,) class
            indices (one-hot): needed by a learned m2, which reads the teleport feature
            G = d||grad L||^2/dT of the squared loss 1/2 ||targets - model(inputs)||^2 summed
            over the batch, the loss it was meta-trained on.
        kind: "checkpoint" (the checkpoint's own teleport: m2's group element for
            LSTM(update,tele) / LSTM(lr,tele), the random or balancing teleport of those
            variants, nothing for LSTM(update)) or a hand-designed teleport of
            teleport.HAND_TELEPORTS: "balance" (the closed-form balancing teleport), "random" (a
            random group element with ||T_k||_F = ``norm``) or "ascent" (8 normalized
            gradient-ascent steps on ||grad L||^2 of norm ``norm``; needs targets).
        group: for "random" and "ascent", the group they move in (symmetry.GROUPS): "gl" (None,
            the default: the action on the batch) or "diag" (positive per-unit rescalings
            exp(diag(t)), ||t_k|| = ``norm``, exact for every input and any batch size).
            "balance" is a diag move already (None or "diag"); "checkpoint" takes the
            checkpoint's own (None). The Teleporter (teleporter.py) offers the other objectives.

        Biases, in design terms: an nn.Linear computes A h + b = [A | b] [h; 1], so it is the
        bias-free layer W = [A | b] acting on the augmented input [h; 1]. The group action
        (symmetry.py) on hidden layer k then reads W_k' = W_k + (sigma^-1(g sigma(Z)) - Z)
        [h; 1]^+ with Z = W_k [h; 1], which moves A_k and b_k together, and
        A_{k+1}' = A_{k+1} g^-1 with b_{k+1} unchanged (the constant 1 is no unit of layer
        k). The move is exact on this batch when every [h_{k-1}; 1] has full column rank:
        n <= d_{k-1} + 1 (n <= d_{k-1} without bias). On other samples the outputs move: that
        is how a teleport changes generalization.

        A learned m2 teleports on its meta-trained schedule (``tele_every``, ``tele_until``)
        counted in ``step()`` calls: call teleport after every step, as the batched path does.
        Returns {"output_change": max |model(inputs) after - before| / max |before|,
        "tele_norm": ||T|| over the hidden layers (learned m2 only)}. Under the guard, a move
        whose output change exceeds ``TELE_TOLERANCE`` (or is not finite) is refused: the model
        stays as it was, the result has "refused": True, and ``opt.state["learned"]
        ["tele_refused"]`` counts it (a teleport that loses the loss it should keep would
        otherwise ratchet the loss up past the step's guard).
        """
        with fused_inference(self.fused):
            return self._teleport(model, inputs, targets, kind, norm, group)

    @torch.no_grad()
    def _teleport(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
                  kind: str, norm: float, group: str | None) -> dict[str, float]:
        if kind not in TELEPORT_KINDS:
            raise ValueError(f"kind must be one of {TELEPORT_KINDS}, got {kind!r}")
        if group is not None:
            check_group(group)
            if (kind, group) in (("balance", "gl"), ("checkpoint", "gl"), ("checkpoint", "diag")):
                raise ValueError(f"kind {kind!r} moves in its own group: leave group=None, got "
                                 f"{group!r}")
        diag_m2 = kind == "checkpoint" and self.learned.tele_group == "diag"
        move_group = "diag" if kind == "balance" or diag_m2 else group
        spec = inspect_module(model, allow_bias=True)
        params = self._check_owned(spec)
        problems = self._problems(spec, inputs, targets, kind, move_group)
        device = problems.X.device
        self._follow(device)
        shared = self._shared(problems.X)
        before = mlp_forward(problems.weights, problems.X, spec.slope)[0]
        ctx = StepContext(max(shared["step"] - 1, 0), problems, None)
        try:
            weights, stats = self._move(spec, problems, ctx, kind, norm, group)
        except RankError as err:
            raise RankError(f"{err}; teleport on a smaller batch (at most "
                            f"{max_exact_batch(spec)} samples for this model, fewer if "
                            "samples are nearly collinear)") from None
        after = mlp_forward(weights, problems.X, spec.slope)[0]
        scale = before.abs().max().clamp_min(torch.finfo(before.dtype).tiny)
        change = float((after - before).abs().max() / scale)
        if self.guard is not None and not change <= TELE_TOLERANCE:
            # not loss-preserving on its own batch (rounding at large weights, a rank-deficient
            # batch): under the guard the model stays where it was, and the refusal is counted
            shared["tele_refused"] = shared.get("tele_refused", 0) + 1
            return {"output_change": change, "refused": True, **stats}
        # m1's moments follow the move: only then are the old values needed
        old = ({id(p): p.detach().clone() for p in params} if self.learned.update_moments
               else None)
        write_weights(spec, weights)
        if old is not None and (kind != "checkpoint" or "tele_loss_change" in ctx.stats):
            self._carry_moments(params, old, move_group == "diag")  # a move was made
        return {"output_change": change, **stats}

    def _carry_moments(self, params: list[torch.Tensor], old: dict, rescaling: bool) -> None:
        """m1's moments of the moved parameters after a teleport: carried along a diag move
        (every coordinate multiplied by a positive factor), restarted after any other (as
        LearnedUpdate.transport_state in the batched path)."""
        for p in params:
            moments = self.state[p].get("m1_moments")
            if moments is None:
                continue
            if rescaling:
                ratio = (p.detach() / old[id(p)]).reshape(-1).to(self._dtype)
                self.state[p]["m1_moments"] = transport_moments(moments, ratio)
            else:
                self.state[p]["m1_moments"] = reset_moments(moments)

    def _problems(self, spec: ModuleSpec, inputs, targets, kind: str, group: str) -> Problems:
        """The batch as one problem of the batched path (B = 1, columns are samples), computed
        in the parameters' dtype; the batch-size limit of the gl move only for a gl move."""
        # a learned m2 and gradient ascent read the teleport feature of the loss
        needs_y = kind == "ascent" or (kind == "checkpoint" and self.learned.group_net is not None)
        who = (f"a {self.learned.name} checkpoint's m2" if kind == "checkpoint"
               else "the ascent teleport")
        return batch_problem(
            spec, inputs, targets, max_batch=None if group == "diag" else max_exact_batch(spec),
            targets_needed=f"{who} reads the teleport feature of the squared loss on the batch"
            if needs_y else None)

    def _move(self, spec: ModuleSpec, problems: Problems, ctx: StepContext, kind: str,
              norm: float, group: str | None):
        weights = problems.weights
        if kind != "checkpoint":
            options = {} if kind == "balance" else {"norm": norm}
            if group is not None and kind != "balance":
                options["group"] = group
            moved, _ = make_teleport(kind, **options)(weights, {}, ctx)
            return moved, {}
        state = self._tele_state(spec, problems)
        moved, new = self.learned.teleport(weights, state, ctx)
        stats = {k: float(v[0]) for k, v in ctx.stats.items() if k == "tele_norm"}
        hidden = spec.linears[:-1]
        if "m2" in new:
            sizes = [self._m2_rows(lin) for lin in hidden]
            for lin, h, c in zip(hidden, new["m2"][0].split(sizes, dim=1),
                                 new["m2"][1].split(sizes, dim=1)):
                self.state[lin.weight]["m2"] = [h, c]
        if "lr" in new:
            self.state[_SHARED]["step_size"] = new["lr"][0]
        # every teleport the learned optimizer makes records its loss change
        if self.learned.m1_state_on_tele == "reset" and "tele_loss_change" in ctx.stats:
            for lin in spec.linears:
                for p in (lin.weight, lin.bias):
                    if p is not None and "m1" in self.state[p]:
                        self.state[p]["m1"] = [torch.zeros_like(s) for s in self.state[p]["m1"]]
                    if p is not None and "m1_moments" in self.state[p]:
                        self.state[p]["m1_moments"] = reset_moments(self.state[p]["m1_moments"])
        return moved, stats

    def _m2_rows(self, lin: nn.Linear) -> int:
        """m2's LSTM rows for hidden layer ``lin``: one per entry of T_k (gl), per unit (diag)."""
        return lin.out_features ** (2 if self.learned.tele_group == "gl" else 1)

    def _tele_state(self, spec: ModuleSpec, problems: Problems) -> dict:
        """The batched path's state of this MLP (B = 1): m2's over the hidden layers in order,
        m1's in the layout of the augmented weights [A | b] when the lookahead input reads it,
        and LSTM(lr,tele)'s step size."""
        like = torch.empty(0, dtype=self._dtype, device=problems.X.device)
        state = {}
        net = self.learned.group_net
        if net is not None:
            parts = []
            for lin in spec.linears[:-1]:
                st = self.state[lin.weight]
                if "m2" not in st:
                    st["m2"] = net.lstm.init_state(self._m2_rows(lin), like)
                parts.append(st["m2"])
            state["m2"] = [torch.cat([s[i] for s in parts], dim=1) for i in range(2)]
        if self.learned.lookahead_input:
            parts = []
            for lin in spec.linears:
                h, c = self._m1_state(lin.weight)
                layers, hidden = h.shape[0], h.shape[-1]
                shape = (layers, lin.out_features, lin.in_features, hidden)
                pieces = [[h.reshape(shape)], [c.reshape(shape)]]
                if lin.bias is not None:
                    hb, cb = self._m1_state(lin.bias)
                    pieces[0].append(hb.reshape(layers, lin.out_features, 1, hidden))
                    pieces[1].append(cb.reshape(layers, lin.out_features, 1, hidden))
                parts.append([torch.cat(p, dim=2).reshape(layers, -1, hidden) for p in pieces])
            state["m1"] = [torch.cat([s[i] for s in parts], dim=1) for i in range(2)]
        if isinstance(net, LrTeleLSTM):
            state["lr"] = self.state[_SHARED]["step_size"].reshape(1)
        return state


def _layer_sizes(params: list[torch.Tensor]) -> list[int]:
    """The numbers of coordinates of the layers of ``params`` (in order): a vector right after
    a parameter whose first dimension it matches is that parameter's bias (nn.Linear's and
    nn.Conv*'s order), and the two are one layer, as a layer [A | b] of the batched path;
    every other parameter is a layer of its own."""
    sizes: list[int] = []
    for i, p in enumerate(params):
        prev = params[i - 1] if i else None
        if p.dim() == 1 and prev is not None and prev.dim() >= 2 and prev.shape[0] == p.shape[0]:
            sizes[-1] += p.numel()
        else:
            sizes.append(p.numel())
    return sizes


LearnedOpt = LearnedTorchOptimizer  # its old name
