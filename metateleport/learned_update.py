"""m1 as an update rule (docs/design.md sections 5 and 9): ``LearnedUpdate`` (what m1 reads,
and what its output becomes), ``LearnedStepGD`` (GD at LSTM(lr,tele)'s learned step size).

- ``gradient_form``: m1's outputs as the log-steps of a positive diagonal preconditioner of the
  gradient over its RMS (``model.update_form: gradient``) or of Adam's direction m^ / sqrt(v^)
  (``model.update_form: adam``, with the moments below), or both summed, each with its own
  log-steps (``model.update_form: mixed``: m1 writes two outputs per coordinate).
- Moments (``model.update_moments``): Adam's moment estimates of every coordinate, kept in m1's
  state, and the two inputs m1 reads from them, g / sqrt(v^) and m^ / sqrt(v^) (Adam's bias
  corrections, ``BETAS`` as tuned Adam's). Each is free of the loss's scale and of the
  coordinate's own scale, which the gradient over its RMS over the whole problem is not (a
  weight of a rarely active pixel or of a rescaled unit has gradients far from the problem's
  RMS); Adam's update is -lr times the second. Under a positive rescaling of every coordinate,
  W -> r W (a diag teleport: W_k[i, j] -> exp(t_k[i] - t_{k-1}[j]) W_k[i, j]), the gradient
  moves to g / r; ``transport_moments`` moves m to m / r and v to v / r^2, after which both
  inputs are exactly what they were: the moments follow the weights through the move.
"""

from __future__ import annotations

import math

import torch

from .baselines import gd_update
from .inner import State, StepContext
from .networks import UpdateLSTM, call_groups, flatten_coords, rms_normalized, unflatten_coords

__all__ = ["BETAS", "FORM_OUTPUTS", "N_MOMENT_INPUTS", "TILT_OVER", "UPDATE_FORMS",
           "UPDATE_INPUTS", "LearnedStepGD", "LearnedUpdate", "first_layer_tilts",
           "gradient_form", "init_moments", "layer_means", "moment_inputs", "reset_moments",
           "transport_moments"]

#: m1's input: the raw gradient, or the gradient over its RMS across the problem's coordinates
UPDATE_INPUTS = ("raw", "rms")
#: what m1's output is (LearnedUpdate's ``form``)
UPDATE_FORMS = ("direct", "gradient", "adam", "mixed")
#: what the tilt bounds a log-step around: the mean over the problem's coordinates, or over
#: its layer's (each layer's weights and bias a common step of their own)
TILT_OVER = ("problem", "layer")
#: m1's outputs per coordinate in each form (the mixed form: log-steps along both directions)
FORM_OUTPUTS = {"direct": 1, "gradient": 1, "adam": 1, "mixed": 2}

#: (beta1, beta2) of the moment estimates: tuned Adam's (baselines.Adam)
BETAS = (0.9, 0.999)
#: how many inputs the moments add to m1 (networks.CoordinateNet's n_extra)
N_MOMENT_INPUTS = 2


def gradient_form(out: torch.Tensor, direction: torch.Tensor, step: float,
                  tilt: float | torch.Tensor | None, sizes: list[int] | None = None
                  ) -> torch.Tensor:
    """The update -step * exp(o) * direction of m1's outputs ``out`` (..., N) as log-steps,
    ``direction`` the gradient over its RMS or Adam's direction (same shape), and
    o = s + tilt * tanh((out - s) / tilt) with s the problem's mean log-step: a positive
    diagonal preconditioner of that direction, whose steps deviate from the problem's common
    step exp(s) by at most a factor exp(tilt) either way (``tilt`` None: o = out, unbounded).
    With ``sizes`` (the numbers of coordinates of the problem's layers, in order, summing to
    N), s is each layer's own mean log-step instead: every layer has a common step of its own,
    which m1 sets freely, and within it the tilt bounds the spread. ``tilt`` may also be a
    tensor (N,) of one bound per coordinate (first_layer_tilts).
    A coordinate whose direction is zero does not move."""
    if tilt is not None:
        s = out.mean(-1, keepdim=True) if sizes is None else layer_means(out, sizes)
        out = s + tilt * torch.tanh((out - s) / tilt)
    return -step * torch.exp(out) * direction


def first_layer_tilts(tilt: float, first: float, sizes: list[int],
                      like: torch.Tensor) -> torch.Tensor:
    """One tilt per coordinate (N,), in ``like``'s dtype and device: ``first`` on the first
    layer's sizes[0] coordinates (the layer that reads the input features), ``tilt`` on the
    others."""
    n = like.shape[-1]
    if not 0 < sizes[0] <= n:
        raise ValueError(f"the first layer's {sizes[0]} coordinates do not fit in the {n} "
                         "coordinates of m1's outputs")
    tilts = like.new_full((n,), float(tilt))
    tilts[:sizes[0]] = first
    return tilts


def layer_means(out: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Each coordinate of ``out`` (..., N) replaced by the mean of its layer's, the layers
    being consecutive runs of ``sizes`` coordinates (summing to N)."""
    if sum(sizes) != out.shape[-1]:
        raise ValueError(f"sizes {sizes} sum to {sum(sizes)}, not to the {out.shape[-1]} "
                         "coordinates of m1's outputs")
    return torch.cat([part.mean(-1, keepdim=True).expand_as(part)
                      for part in out.split(list(sizes), dim=-1)], dim=-1)


def init_moments(like: torch.Tensor) -> dict[str, torch.Tensor]:
    """Zero moments for coordinates shaped like ``like`` (..., N): {"m", "v": like's shape,
    "count": the steps taken, a 0-dim tensor (moment_inputs also takes one count per
    coordinate)}."""
    return {"m": torch.zeros_like(like), "v": torch.zeros_like(like),
            "count": like.new_zeros(())}


def reset_moments(moments: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The moments of a fresh start (after a move that is no rescaling of the coordinates)."""
    return init_moments(moments["m"])


def moment_inputs(grad: torch.Tensor, moments: dict[str, torch.Tensor]
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Adam's moments updated with ``grad`` (..., N) and m1's inputs from them: (..., N,
    N_MOMENT_INPUTS) holding g / sqrt(v^) and m^ / sqrt(v^) (0 where v^ is 0: a coordinate
    whose gradient has been zero so far), and the new moments. Both inputs lie within
    +-1 / sqrt(1 - beta2) whatever the gradient's scale."""
    b1, b2 = BETAS
    g = grad.detach()
    m = b1 * moments["m"] + (1 - b1) * g
    v = b2 * moments["v"] + (1 - b2) * g * g
    count = moments["count"] + 1
    m_hat, v_hat = m / (1 - b1 ** count), v / (1 - b2 ** count)
    root = v_hat.sqrt()
    seen = root > 0
    safe = torch.where(seen, root, torch.ones_like(root))
    inputs = torch.stack([torch.where(seen, g / safe, torch.zeros_like(g)),
                          torch.where(seen, m_hat / safe, torch.zeros_like(g))], dim=-1)
    return inputs, {"m": m, "v": v, "count": count}


def transport_moments(moments: dict[str, torch.Tensor], ratio: torch.Tensor
                      ) -> dict[str, torch.Tensor]:
    """The moments after every coordinate was multiplied by ``ratio`` (shaped like them, > 0):
    m / ratio, v / ratio^2. Where the ratio is not a finite positive number (a weight that was
    exactly 0), that coordinate's moments stay as they were."""
    ok = torch.isfinite(ratio) & (ratio > 0)
    r = torch.where(ok, ratio, torch.ones_like(ratio)).to(moments["m"].dtype)
    return {**moments, "m": moments["m"] / r, "v": moments["v"] / (r * r)}


class LearnedUpdate:
    """m1 as an update rule: the gradient's coordinates (all problems, all weights, one LSTM
    call) -> the update's, in the network's dtype. State: {"m1": LSTM state} and, with
    ``moments``, {"m1_moments": Adam's moments of every coordinate (learned_update)}.

    ``input`` "rms": m1 reads each problem's gradient divided by its RMS over the problem's
    coordinates, so that its update does not depend on the loss's absolute scale (a deep net
    starts at ~1e2 x the loss of a shallow one); "raw": the gradient as it is.

    ``form`` "direct": m1's output is the update; "gradient" (needs input "rms"): it is the log
    of a positive step per coordinate along minus that input, gradient_form(out, input,
    ``step``, ``tilt``); "adam" (needs ``moments``): the same along minus Adam's direction
    m^ / sqrt(v^), so that m1 is Adam under a learned positive diagonal preconditioner (its
    steps within exp(+-tilt) of the problem's common one); "mixed" (needs both): the sum of
    the two, m1 writing two log-steps per coordinate (a net with n_out 2), each bounded around
    its own common step, so that m1 weighs per coordinate and per problem how far it follows
    the gradient's magnitudes and how far Adam's per-coordinate normalization.

    ``tilt_over`` "problem": the tilt bounds each log-step around the problem's mean;
    "layer": around its own layer's (the layer's weights and bias: in the batched path one
    matrix [A | b]), so that every layer has a common step of its own, as with layerwise step
    sizes, and within a layer the step stays near the direction's geometry.

    ``moments``: m1 also reads g / sqrt(v^) and m^ / sqrt(v^) of every coordinate (Adam's
    moment estimates; the net needs n_extra = N_MOMENT_INPUTS), free of each coordinate's own
    scale. A teleport that rescales the coordinates carries the moments along
    (``transport_state``)."""

    def __init__(self, net: UpdateLSTM, name: str = "LSTM(update)", input: str = "raw",
                 form: str = "direct", step: float = 0.1, tilt: float | None = None,
                 moments: bool = False, tilt_over: str = "problem",
                 tilt_first: float | None = None):
        if input not in UPDATE_INPUTS:
            raise ValueError(f"update input must be one of {UPDATE_INPUTS}, got {input!r}")
        if form not in UPDATE_FORMS:
            raise ValueError(f"update form must be one of {UPDATE_FORMS}, got {form!r}")
        if form in ("gradient", "mixed") and input != "rms":
            raise ValueError(f"the {form} update form moves along the gradient over its RMS: "
                             f"it needs input 'rms', got {input!r}")
        if form in ("adam", "mixed") and not moments:
            raise ValueError(f"the {form} update form moves along Adam's direction: it needs "
                             "moments=True")
        if tilt_over not in TILT_OVER:
            raise ValueError(f"tilt_over must be one of {TILT_OVER}, got {tilt_over!r}")
        if tilt_first is not None and (tilt is None or not tilt_first > 0):
            raise ValueError(f"tilt_first must be > 0 and needs a tilt, got {tilt_first!r} "
                             f"with tilt {tilt!r}")
        if net.n_out != FORM_OUTPUTS[form]:
            raise ValueError(f"the {form} update form needs a net with n_out="
                             f"{FORM_OUTPUTS[form]}, got {net.n_out}")
        if net.n_extra != (N_MOMENT_INPUTS if moments else 0):
            raise ValueError(f"m1 with moments={moments} needs a net with n_extra="
                             f"{N_MOMENT_INPUTS if moments else 0}, got {net.n_extra}")
        self.net, self.name, self.input = net, name, input
        self.form, self.step, self.tilt, self.moments = form, step, tilt, moments
        self.tilt_over, self.tilt_first = tilt_over, tilt_first

    def shape(self, out: torch.Tensor, direction: torch.Tensor,
              sizes: list[int] | None = None) -> torch.Tensor:
        """The update (..., N) from m1's output ``out`` and ``direction`` (..., N), the last
        axis one problem's coordinates (the gradient over its RMS, or for the adam form
        Adam's direction), or for the mixed form both (..., N, 2) with both directions:
        ``out`` itself, gradient_form's, or the sum of gradient_form's along each direction.
        ``sizes``: the problem's layers' numbers of coordinates, in the order of the last axis
        (needed when ``tilt_over`` is "layer" or ``tilt_first`` is set)."""
        if self.form == "direct":
            return out
        if sizes is None and self.tilt is not None and (self.tilt_over == "layer"
                                                        or self.tilt_first is not None):
            raise ValueError("m1's tilt is bounded per layer or differs in the first layer: "
                             "pass the layers' sizes")
        per = sizes if self.tilt_over == "layer" else None
        direction = direction.to(out.dtype)
        tilt = self.tilt
        if self.tilt_first is not None:
            tilt = first_layer_tilts(self.tilt, self.tilt_first, sizes, direction[..., 0]
                                     if self.form == "mixed" else direction)
        if self.form == "mixed":
            return sum(gradient_form(out[..., k], direction[..., k], self.step, tilt, per)
                       for k in range(FORM_OUTPUTS["mixed"]))
        return gradient_form(out, direction, self.step, tilt, per)

    def direction(self, normalized: torch.Tensor, inputs: torch.Tensor | None) -> torch.Tensor:
        """What the gradient, adam and mixed forms step along, from m1's first input
        ``normalized`` (..., N) and its moment inputs (..., N, N_MOMENT_INPUTS) or None: Adam's
        direction for the adam form, both (..., N, 2) for the mixed one, else that first
        input."""
        if self.form == "mixed":
            return torch.stack([normalized.to(inputs.dtype), inputs[..., 1]], dim=-1)
        return inputs[..., 1] if self.form == "adam" else normalized

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def init_state(self, problems) -> State:
        like = problems.weights[0].to(self._dtype)
        n = sum(w.shape[1] * w.shape[2] for w in problems.weights)
        state = {"m1": self.net.lstm.init_state(problems.batch_size * n, like)}
        if self.moments:
            state["m1_moments"] = init_moments(like.new_zeros(problems.batch_size, n))
        return state

    def propose(self, grads, m1_state, moments=None) -> tuple:
        """m1 on the coordinates of ``grads``: (updates (B, N) in the gradients' dtype, the new
        LSTM state, the new moments or None)."""
        return self.propose_groups([grads], [m1_state], None if moments is None
                                   else [moments])[0]

    def propose_groups(self, grads: list[list[torch.Tensor]], m1_states: list,
                       moments: list | None = None) -> list[tuple]:
        """``propose`` for several groups (one list entry each) in one LSTM call."""
        flats = [flatten_coords(g) for g in grads]
        inputs, new_moments = [None] * len(flats), [None] * len(flats)
        if self.moments:
            if moments is None:
                raise ValueError("m1 reads moments: pass each group's state['m1_moments']")
            inputs, new_moments = zip(*(moment_inputs(flat.to(self._dtype), mo)
                                        for flat, mo in zip(flats, moments)))
        if self.input == "rms":
            flats = [rms_normalized(flat, 1) for flat in flats]
        outs = call_groups(self.net, [flat.reshape(-1).to(self._dtype) for flat in flats],
                           m1_states, None if not self.moments
                           else [x.reshape(-1, x.shape[-1]) for x in inputs])
        return [(self.shape(delta.reshape(*flat.shape, *delta.shape[1:]),
                            self.direction(flat, x),
                            [math.prod(w.shape[1:]) for w in g]).to(g[0].dtype),
                 m1, mo) for (delta, _, m1), flat, x, g, mo
                in zip(outs, flats, inputs, grads, new_moments)]

    def update(self, weights, grads, state: State, ctx: StepContext):
        return self.update_groups([weights], [grads], [state], [ctx])[0]

    def update_groups(self, weights, grads, states: list[State], ctxs: list[StepContext]):
        """``update`` for several groups in lockstep (one list entry each), m1 called once on
        the coordinates of all of them (networks.call_groups)."""
        out = []
        proposals = self.propose_groups(
            grads, [state["m1"] for state in states],
            [state["m1_moments"] for state in states] if self.moments else None)
        for (delta, m1, mo), g, state, ctx in zip(proposals, grads, states, ctxs):
            ctx.stats["update_norm"] = delta.detach().norm(dim=1)
            new = {**state, "m1": m1}
            if mo is not None:
                new["m1_moments"] = mo
            out.append((unflatten_coords(delta, [x.shape for x in g]), new))
        return out

    def transport_state(self, before, after, state: State, rescaling: bool) -> State:
        """The state after a teleport moved the weights ``before`` to ``after``: with
        ``rescaling`` (a diag move: every coordinate multiplied by a positive factor) the
        moments follow the coordinates (transport_moments), else they restart; the
        LSTM state is kept either way (Teleporting's rule_state_on_teleport decides that)."""
        if "m1_moments" not in state:  # LearnedTorchOptimizer carries them itself
            return state
        if not rescaling:
            return {**state, "m1_moments": reset_moments(state["m1_moments"])}
        with torch.no_grad():
            ratio = flatten_coords([a.detach() for a in after]) / flatten_coords(
                [b.detach() for b in before])
        return {**state, "m1_moments": transport_moments(state["m1_moments"], ratio)}

    def reset_state(self, state: State) -> State:
        # LearnedTorchOptimizer hands a teleport m1's state only when m2 reads it (lookahead)
        if "m1" not in state:
            return state
        new = {**state, "m1": [torch.zeros_like(s) for s in state["m1"]]}
        if "m1_moments" in state:
            new["m1_moments"] = reset_moments(state["m1_moments"])
        return new


class LearnedStepGD:
    """Gradient descent at the step size that LSTM(lr,tele)'s m2 set at its last teleport
    (state["lr"], (B,)); the step size itself is LearnedTeleport's state."""

    name = "GD at the learned step size"

    def init_state(self, problems) -> State:
        return {}

    def update(self, weights, grads, state: State, ctx: StepContext):
        ctx.stats["lr"] = state["lr"]
        return gd_update(grads, state["lr"].to(grads[0].dtype)), state

    def reset_state(self, state: State) -> State:
        return state
