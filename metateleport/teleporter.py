"""``Teleporter``: a teleport for any LeakyReLU MLP of nn.Linear layers and any torch.optim
optimizer (docs/design.md sections 3, 4 and 10; usage in docs/usage.md).

    tele = Teleporter("curvature", group="diag", steps=10, step_size=0.05, direction="maximize")
    report = tele(model, inputs, targets, optimizer=opt)   # moves model in place

The teleport is gradient ascent (or descent) on the group parameter, T_k (d_k x d_k, g_k =
expm(T_k)) for group "gl" or t_k (d_k, g_k = exp(diag(t_k))) for "diag", one per hidden layer:
from 0, ``steps`` steps P <- P +- step_size * dObj(P . W)/dP, each objective evaluated at the
group element applied to the model's weights as they were (symmetry.apply_group), then the
weights are replaced by P . W. With ``normalize`` (the default) every step has length step_size
per layer, whatever the scale of the objective; ``max_norm`` caps each layer's ||P_k||. A step
whose objective or gradient is not finite is not taken, and the teleport stops there.

Groups: "diag" is exact for every input (the function the model computes does not change);
"gl" is exact on this batch only (the model's outputs on other inputs move) and needs n <= d + 1
samples, d the narrowest hidden-layer input (n <= d without biases). The objective is computed
in float64 and the weights written back in the model's dtype.

The optimizer's state (``optimizer_state``): "transform" carries it through the move where
that is exact (diag only; state_transport.py says what, and refuses the rest with an error
naming why), "reset" drops the state of the moved parameters (a fresh optimizer, the public
reference's choice), "keep" leaves it as it is. Under "gl", "transform" is refused: nothing
about the state transforms exactly with a move that depends on the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .mlp import mlp_forward, mlp_loss
from .modules import ModuleSpec, inspect_module, module_weights, write_weights
from .objectives import Objective, make_objective
from .state_transport import OPTIMIZER_STATES, check_transformable, rescale_state, reset_state
from .symmetry import RankError, apply_group, check_group, input_pinv
from .tasks import Problems

__all__ = ["DIRECTIONS", "TeleportReport", "Teleporter", "batch_problem", "max_exact_batch",
           "unit_factors"]

DIRECTIONS = ("maximize", "minimize")


def max_exact_batch(spec: ModuleSpec) -> int:
    """The largest batch on which the gl move is exact: every hidden layer's input [h; 1]
    (h without a bias) needs at least n rows."""
    return min(spec.widths[k] + (spec.linears[k].bias is not None)
               for k in range(len(spec.linears) - 1))


def batch_problem(spec: ModuleSpec, inputs: torch.Tensor, targets: torch.Tensor | None, *,
                  dtype: torch.dtype | None = None, max_batch: int | None = None,
                  targets_needed: str | None = None) -> Problems:
    """A model's batch as one problem of the batched path (B = 1, columns are samples).

    inputs: (n, d_0), rows are samples as the model takes them; targets: (n, d_L) regression
    targets, (n,) class indices (one-hot rows), or None (zeros). dtype: of the computation (the
    model's by default). max_batch: refuse n > max_batch (the gl move's exactness).
    targets_needed: why targets are needed, if they are (an error then says it).
    """
    lin0 = spec.linears[0]
    dtype, device = dtype or lin0.weight.dtype, lin0.weight.device
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2 \
            or inputs.shape[1] != spec.widths[0]:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs)
        raise ValueError(f"inputs must be (n, {spec.widths[0]}) (rows are samples, as the "
                         f"model takes them), got {shape}")
    if not bool(torch.isfinite(inputs).all()):
        raise ValueError("inputs hold NaN or inf")
    n = inputs.shape[0]
    if max_batch is not None and n > max_batch:
        raise ValueError(
            f"the teleport batch has n={n} samples, but the move is exact on a batch only "
            f"when every layer input [h; 1] has full column rank, n <= {max_batch} for this "
            f"model (widths {list(spec.widths)}): teleport on a smaller batch, e.g. "
            f"inputs[:{max_batch}]")
    X = inputs.detach().to(device, dtype).T.unsqueeze(0).contiguous()
    d_out = spec.widths[-1]
    if targets is None:
        if targets_needed is not None:
            raise ValueError(f"{targets_needed}: pass targets")
        Y = X.new_zeros(1, d_out, n)
    else:
        targets = targets.detach().to(device)
        if targets.dim() == 1 and not targets.is_floating_point():
            targets = nn.functional.one_hot(targets.long(), d_out)
        if tuple(targets.shape) != (n, d_out):
            raise ValueError(f"targets must be (n={n}, {d_out}) or (n,) class indices, got "
                             f"{tuple(targets.shape)}")
        if not bool(torch.isfinite(targets.to(dtype)).all()):
            raise ValueError("targets hold NaN or inf")
        Y = targets.to(dtype).T.unsqueeze(0).contiguous()
    return Problems(X, Y, [w.to(dtype) for w in module_weights(spec)], spec.slope)


def unit_factors(spec: ModuleSpec, ts: list[torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
    """The elementwise factor a of every Linear parameter under the diag move of ``ts`` (t_k of
    shape (1, d_k) or (d_k,)): p' = a * p, (weight factor, bias factor or nothing) per layer.
    a_ij = s_k,i / s_{k-1},j for the weight of layer k, a_i = s_k,i for its bias, s = exp(t)
    and s = 1 for the input and output units."""
    scales = [t.reshape(-1).exp() for t in ts]
    out = []
    for k, lin in enumerate(spec.linears):
        rows = scales[k] if k < len(scales) else torch.ones(lin.out_features).to(scales[0])
        cols = scales[k - 1] if k > 0 else torch.ones(lin.in_features).to(scales[0])
        parts = (rows[:, None] / cols[None, :],) + ((rows,) if lin.bias is not None else ())
        out.append(parts)
    return out


@dataclass(frozen=True)
class TeleportReport:
    """What a teleport did. objective_*: the objective before and after (float64); loss_*: the
    batch loss 1/2 ||Y - f(X)||^2 summed over samples (None without targets), after as written
    back in the model's dtype; group_norm: ||P|| over all hidden layers (sqrt of the sum of
    ||T_k||_F^2, or of ||t_k||^2 for diag, so exp(+-group_norm) bounds the diag scales);
    layer_norms: each layer's; steps: steps taken (fewer than asked if one was not finite);
    output_change: max |f after - f before| / max |f before| on the batch; optimizer_state:
    what was done with the optimizer's state (None: no optimizer); params: the group parameter
    P_k per hidden layer (float64, detached), to repeat the move with symmetry.apply_group."""

    objective: str
    group: str
    direction: str
    objective_before: float
    objective_after: float
    loss_before: float | None
    loss_after: float | None
    group_norm: float
    layer_norms: tuple[float, ...]
    steps: int
    output_change: float
    optimizer_state: str | None
    params: tuple[torch.Tensor, ...] = field(repr=False)

    def as_dict(self) -> dict:
        """Everything but ``params``, JSON-ready."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()
                if k != "params"}


@dataclass
class Teleporter:
    """Gradient ascent or descent of an objective along the orbit of a model's weights.

    objective: "grad_norm", "sharpness", "curvature" (objectives.OBJECTIVES, default options)
        or an objective object (objectives.Sharpness(radii=...), ...).
    group: "diag" (exact for every input) or "gl" (exact on the batch), symmetry.GROUPS.
    steps: gradient steps on the group parameter (0: no move).
    step_size: the length of each step per layer with ``normalize``, else the multiplier of
        the gradient.
    direction: "maximize" or "minimize".
    max_norm: a cap on each layer's ||P_k|| after every step, or None.
    optimizer_state: "transform", "reset" or "keep" (module docstring).

    Calling it, ``tele(model, inputs, targets=None, optimizer=None)``, moves ``model`` (an
    nn.Sequential or module of nn.Linear layers, with or without biases, and nn.LeakyReLU of
    one slope; modules.inspect_module) in place on the batch inputs (n, d_0), targets (n, d_L)
    or (n,) class indices (the curvature objective does not read them), and returns a
    TeleportReport. ``optimizer`` must hold every Linear parameter of the model.
    """

    objective: str | Objective = "grad_norm"
    group: str = "diag"
    steps: int = 10
    step_size: float = 0.01
    direction: str = "maximize"
    normalize: bool = True
    max_norm: float | None = None
    optimizer_state: str = "transform"

    def __post_init__(self):
        self._objective = make_objective(self.objective)
        check_group(self.group)
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {self.steps!r}")
        if not (isinstance(self.step_size, (int, float)) and math.isfinite(self.step_size)
                and self.step_size > 0):
            raise ValueError(f"step_size must be a finite number > 0, got {self.step_size!r}")
        if self.max_norm is not None and not self.max_norm > 0:
            raise ValueError(f"max_norm must be > 0 or None, got {self.max_norm!r}")
        if self.optimizer_state not in OPTIMIZER_STATES:
            raise ValueError(f"optimizer_state must be one of {OPTIMIZER_STATES}, got "
                             f"{self.optimizer_state!r}")

    @property
    def objective_name(self) -> str:
        return getattr(self._objective, "name", type(self._objective).__name__)

    def __call__(self, model: nn.Module, inputs: torch.Tensor,
                 targets: torch.Tensor | None = None,
                 optimizer: torch.optim.Optimizer | None = None) -> TeleportReport:
        return self._teleport(model, inputs, targets, optimizer, None)

    def move(self, model: nn.Module, inputs: torch.Tensor, params: list[torch.Tensor],
             targets: torch.Tensor | None = None,
             optimizer: torch.optim.Optimizer | None = None) -> TeleportReport:
        """Move ``model`` in place by a given group element instead of ascending: ``params``,
        one P_k per hidden layer (gl: (d_k, d_k) or (1, d_k, d_k); diag: (d_k,) or (1, d_k)),
        e.g. a report's params, or a random direction of a chosen norm (the control of a
        teleport). The batch, the group and the optimizer's state are handled as by a
        teleport; the report's objective_* are the objective at the two ends, steps = 0."""
        return self._teleport(model, inputs, targets, optimizer, params)

    def _teleport(self, model, inputs, targets, optimizer, given) -> TeleportReport:
        spec = inspect_module(model, allow_bias=True)
        params = [p for lin in spec.linears for p in (lin.weight, lin.bias) if p is not None]
        self._check_optimizer(optimizer, params)
        for name, lin in zip(spec.names, spec.linears):
            if not all(bool(torch.isfinite(p).all()) for p in lin.parameters()):
                raise ValueError(f"layer {name!r} holds NaN or inf: nothing to teleport")
        needs_y = getattr(self._objective, "reads_targets", True)
        problems = batch_problem(
            spec, inputs, targets, dtype=torch.float64,
            max_batch=max_exact_batch(spec) if self.group == "gl" else None,
            targets_needed=f"the objective {self.objective_name!r} reads the loss on the batch"
            if needs_y else None)
        try:
            ps, values, taken = (self._ascend(problems) if given is None
                                 else self._given(problems, given))
            with torch.no_grad():
                moved = apply_group(problems.weights, problems.X, ps, self.group, spec.slope,
                                    x_pinv=self._x_pinv(problems))
        except RankError as err:
            raise RankError(f"{err}; teleport on a smaller batch (at most "
                            f"{max_exact_batch(spec)} samples for this model, fewer if samples "
                            "are nearly collinear)") from None
        if not all(bool(torch.isfinite(w).all()) for w in moved):
            raise FloatingPointError("the teleported weights are not finite: use a smaller "
                                     "step_size or max_norm")
        dtype = spec.linears[0].weight.dtype
        X, Y, slope = problems.X, problems.Y, spec.slope
        before = mlp_forward(problems.weights, X, slope)[0]
        write_weights(spec, [w.to(dtype) for w in moved])
        written = [w.to(torch.float64) for w in module_weights(spec)]
        after = mlp_forward(written, X, slope)[0]
        scale = before.abs().max().clamp_min(torch.finfo(before.dtype).tiny)
        done = self._carry_state(optimizer, spec, params, ps)
        losses = [None if targets is None else float(mlp_loss(w, X, Y, slope).sum())
                  for w in (problems.weights, written)]
        norms = tuple(float(p.detach().norm()) for p in ps)
        return TeleportReport(
            objective=self.objective_name, group=self.group, direction=self.direction,
            objective_before=values[0], objective_after=values[-1],
            loss_before=losses[0], loss_after=losses[1],
            group_norm=math.sqrt(sum(n * n for n in norms)), layer_norms=norms, steps=taken,
            output_change=float((after - before).abs().max() / scale),
            optimizer_state=done, params=tuple(p.detach() for p in ps))

    def _check_optimizer(self, optimizer, params) -> None:
        """Refuse, before anything moves, an optimizer that does not hold the model's
        parameters or whose state cannot be transformed as asked."""
        if optimizer is None:
            return
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got "
                             f"{type(optimizer).__name__}")
        mine = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if any(id(p) not in mine for p in params):
            raise ValueError("the model's Linear parameters are not all in the optimizer's "
                             "param groups: pass the optimizer that steps this model")
        if self.optimizer_state != "transform":
            return
        if self.group == "gl":
            raise ValueError(
                "optimizer_state='transform' is exact only for the diag group: the gl move "
                "depends on the batch and the point, and no optimizer state transforms with it; "
                "pass optimizer_state='reset' (a fresh state) or 'keep'")
        check_transformable(optimizer, params)

    def _x_pinv(self, problems: Problems) -> torch.Tensor | None:
        return input_pinv(problems.X, problems.weights[0]) if self.group == "gl" else None

    def _ascend(self, problems: Problems) -> tuple[list[torch.Tensor], list[float], int]:
        """The steps on the group parameter: (final P, objective values, steps taken)."""
        W, X, Y, slope = problems.weights, problems.X, problems.Y, problems.slope
        x_pinv = self._x_pinv(problems)
        sign = 1.0 if self.direction == "maximize" else -1.0
        ps = [W[k].new_zeros((1, W[k].shape[1], W[k].shape[1]) if self.group == "gl"
                             else (1, W[k].shape[1])) for k in range(len(W) - 1)]

        def value_at(ps):
            ps = [p.detach().requires_grad_() for p in ps]
            moved = apply_group(W, X, ps, self.group, slope, x_pinv=x_pinv)
            return ps, self._objective(moved, X, Y, slope, self.group).sum()

        with torch.enable_grad():
            ps, value = value_at(ps)
            if not bool(torch.isfinite(value)):
                raise FloatingPointError(f"the objective {self.objective_name!r} is not finite "
                                         "at the model's weights")
            values, taken = [float(value.detach())], 0
            for _ in range(self.steps):
                grads = torch.autograd.grad(value, ps)
                if not all(bool(torch.isfinite(g).all()) for g in grads):
                    break
                new = [p.detach() + sign * self._step(g) for p, g in zip(ps, grads)]
                if self.max_norm is not None:
                    new = [p * (self.max_norm / p.norm().clamp_min(1e-300)).clamp_max(1.0)
                           for p in new]
                new, new_value = value_at(new)
                if not bool(torch.isfinite(new_value)):
                    break
                ps, value, taken = new, new_value, taken + 1
                values.append(float(value.detach()))
        return ps, values, taken

    def _given(self, problems: Problems,
               given: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[float], int]:
        """``given`` as group parameters of ``problems`` (float64, batch dimension 1), with
        the objective at the identity and at them: (P, [before, after], 0)."""
        W = problems.weights
        if len(given) != len(W) - 1:
            raise ValueError(f"need one group parameter per hidden layer: {len(W) - 1}, got "
                             f"{len(given)}")
        ps = []
        for k, p in enumerate(given):
            d = W[k].shape[1]
            shape = (1, d, d) if self.group == "gl" else (1, d)
            if p.numel() != math.prod(shape):
                raise ValueError(f"the {self.group} parameter of hidden layer {k + 1} must "
                                 f"have shape {shape[1:]}, got {tuple(p.shape)}")
            ps.append(p.detach().to(W[0]).reshape(shape))
        x_pinv = self._x_pinv(problems)
        with torch.enable_grad():
            values = [float(self._objective(
                apply_group(W, problems.X, q, self.group, problems.slope, x_pinv=x_pinv),
                problems.X, problems.Y, problems.slope, self.group).sum().detach())
                for q in ([torch.zeros_like(p) for p in ps], ps)]
        return ps, values, 0

    def _step(self, g: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return self.step_size * g
        norm = g.norm()
        return g * (self.step_size / norm) if norm > 0 else torch.zeros_like(g)

    def _carry_state(self, optimizer, spec, params, ps) -> str | None:
        if optimizer is None:
            return None
        if self.optimizer_state == "reset":
            reset_state(optimizer, params)
        elif self.optimizer_state == "transform":
            linear_params = [[lin.weight] + ([lin.bias] if lin.bias is not None else [])
                             for lin in spec.linears]
            rescale_state(optimizer, [(p, a) for ps_, as_ in
                                      zip(linear_params, unit_factors(spec, ps))
                                      for p, a in zip(ps_, as_)])
        return self.optimizer_state
