"""Meta-training by unrolled differentiation with truncated BPTT (design.md section 6).

B trajectories advance together. Every window of K inner steps ends with one Adam step on the
meta-parameters; the inner weights and LSTM states are then detached and carried into the next
window. After N inner steps a fresh batch is drawn from the training seed stream.

The meta-loss of a window starting at inner step t is the mean over trajectories of

    sum_{s = t+1}^{t+K} L(W_s)          ("sum"), or
    sum_{s = t+1}^{t+K} log L(W_s)      ("log"),

i.e. the losses reached by the window's K updates (L(W_t) itself does not depend on them).
A window whose meta-loss or meta-gradient is not finite is skipped (no Adam step), counted, and
its trajectories are replaced by a fresh batch.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .config import Config
from .meta_optimizers import LearnedOptimizer
from .optimizers import (
    LossAndGrad,
    State,
    StepContext,
    Trajectory,
    detach_state,
    inner_step,
    run,
)
from .symmetry import input_pinv
from .tasks import MLPTaskFamily, Problems, Split, mlp_loss

__all__ = [
    "MetaTrainer",
    "apply_meta_step",
    "build_family",
    "build_optimizer",
    "unroll_window",
    "window_meta_loss",
]

# Training batch j of a run with seed s uses task seed s * _SEED_STRIDE + j.
_SEED_STRIDE = 1_000_000


def build_family(cfg: Config) -> MLPTaskFamily:
    return MLPTaskFamily(**dataclasses.asdict(cfg.task), dtype=getattr(torch, cfg.train.dtype))


def build_optimizer(cfg: Config) -> LearnedOptimizer:
    return LearnedOptimizer(**dataclasses.asdict(cfg.model)).to(getattr(torch, cfg.train.dtype))


META_LOSSES = ("log", "sum")


def window_meta_loss(losses: torch.Tensor, kind: str) -> torch.Tensor:
    """losses: (K, B) inner losses reached in a window -> scalar meta-loss."""
    if kind not in META_LOSSES:
        raise ValueError(f"meta-loss must be one of {META_LOSSES}, got {kind!r}")
    if kind == "log":
        losses = losses.log()
    return losses.sum(dim=0).mean()


def unroll_window(
    opt: LearnedOptimizer,
    weights: list[torch.Tensor],
    state: State,
    problems: Problems,
    x_pinv: torch.Tensor | None,
    t0: int,
    K: int,
    loss_and_grad: LossAndGrad | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor], State, StepContext]:
    """K inner steps from inner step t0, keeping the graph to the meta-parameters.

    Returns (losses (K, B) = L(W_{t0+1}) .. L(W_{t0+K}), the final weights and state, the last
    step's context with its stats). L(W_{t0}) is left out: it does not depend on the window.
    """
    p = problems
    losses, ctx = [], None
    for k in range(K):
        ctx = StepContext(t0 + k, p, x_pinv)
        loss, weights, state = inner_step(opt, weights, state, ctx, loss_and_grad)
        if k > 0:
            losses.append(loss)
    if loss_and_grad is None:
        losses.append(mlp_loss(weights, p.X, p.Y, p.slope))
    else:
        losses.append(loss_and_grad(weights)[0])
    return torch.stack(losses), weights, state, ctx


def apply_meta_step(
    meta_opt: torch.optim.Optimizer, params, meta_loss: torch.Tensor, grad_clip: float
) -> tuple[bool, float]:
    """Backpropagate ``meta_loss``, clip the meta-gradient norm and take the step, unless the
    loss or the norm is not finite: then nothing is applied. Returns (applied, grad norm)."""
    params = list(params)
    meta_opt.zero_grad(set_to_none=True)
    if not bool(torch.isfinite(meta_loss)):
        return False, math.nan
    meta_loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip).item()
    if not math.isfinite(grad_norm):
        meta_opt.zero_grad(set_to_none=True)
        return False, grad_norm
    meta_opt.step()
    return True, grad_norm


class MetaTrainer:
    """Owns the learned optimizer, its Adam meta-optimizer, the carried trajectories and the
    counters. ``window()`` runs one truncation window; ``state_dict``/``load_state_dict`` make
    resuming bit-identical on CPU."""

    def __init__(self, cfg: Config, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        torch.manual_seed(cfg.train.seed)
        self.family = build_family(cfg)
        self.opt = build_optimizer(cfg).to(self.device)
        self.meta_opt = torch.optim.Adam(self.opt.parameters(), lr=cfg.train.meta_lr)
        self.meta_step = 0  # windows processed, applied or skipped
        self.batches = 0  # trajectory batches drawn
        self.skipped = 0
        self.carry: dict | None = None
        tr = cfg.train
        self.windows_per_batch = tr.n_steps // tr.unroll
        self.total_meta_steps = math.ceil(tr.trajectories / tr.batch_size) * self.windows_per_batch
        self.val_problems = self.family.sample(tr.val_problems, tr.seed, Split.VAL).to(self.device)

    @property
    def trajectories(self) -> int:
        """Trajectories started so far."""
        return self.batches * self.cfg.train.batch_size

    def _new_batch(self) -> None:
        seed = self.cfg.train.seed * _SEED_STRIDE + self.batches
        problems = self.family.sample(self.cfg.train.batch_size, seed, Split.TRAIN).to(self.device)
        self.batches += 1
        self.carry = {
            "problems": problems,
            "x_pinv": input_pinv(problems.X),
            "weights": [w.clone() for w in problems.weights],
            "state": self.opt.init_state(problems),
            "t": 0,
        }

    def meta_lr(self) -> float:
        """The meta step size of the current window: constant, or cosine-decayed from meta_lr
        to 0 over the run (late windows then stop jolting the validation loss)."""
        tr = self.cfg.train
        if tr.meta_lr_schedule == "constant":
            return tr.meta_lr
        return 0.5 * tr.meta_lr * (1 + math.cos(math.pi * self.meta_step / self.total_meta_steps))

    def window(self) -> dict[str, float]:
        """Run one window of K inner steps and one meta-step. Returns scalar stats."""
        tr = self.cfg.train
        for group in self.meta_opt.param_groups:
            group["lr"] = self.meta_lr()
        if self.carry is None:
            self._new_batch()
        c = self.carry
        self.opt.train()
        losses, weights, state, ctx = unroll_window(
            self.opt, c["weights"], c["state"], c["problems"], c["x_pinv"], c["t"], tr.unroll)
        meta_loss = window_meta_loss(losses, tr.meta_loss)
        stats = {
            "meta_lr": self.meta_opt.param_groups[0]["lr"],
            "meta_loss": meta_loss.item(),
            "inner_loss": losses[-1].detach().median().item(),
            "t_end": c["t"] + tr.unroll,
        }
        stats.update({k: v.float().mean().item() for k, v in ctx.stats.items()})
        applied, stats["grad_norm"] = apply_meta_step(
            self.meta_opt, self.opt.parameters(), meta_loss, tr.grad_clip)
        self.meta_step += 1
        if applied:
            c["weights"], c["state"] = detach_state(weights), detach_state(state)
            c["t"] += tr.unroll
            if c["t"] >= tr.n_steps:
                self.carry = None
        else:
            # Diverged trajectories would only produce more skipped windows: draw new ones.
            self.skipped += 1
            self.carry = None
        stats["skipped"] = self.skipped
        return stats

    @property
    def done(self) -> bool:
        return self.meta_step >= self.total_meta_steps

    @torch.no_grad()
    def validate(self, problems: Problems | None = None) -> Trajectory:
        """Run the current optimizer over the whole horizon on the validation problems."""
        self.opt.eval()
        return run(self.opt, problems or self.val_problems, self.cfg.train.n_steps)

    def state_dict(self) -> dict:
        return {
            "opt": self.opt.state_dict(),
            "meta_opt": self.meta_opt.state_dict(),
            "counters": {"meta_step": self.meta_step, "batches": self.batches,
                         "skipped": self.skipped},
            "carry": None if self.carry is None else {
                **self.carry, "problems": dataclasses.asdict(self.carry["problems"])},
            # Problems come from seeded numpy generators of their own; only torch's global RNG
            # (parameter init) is process state.
            "rng": {"torch": torch.get_rng_state()},
        }

    def load_state_dict(self, data: dict) -> None:
        self.opt.load_state_dict(data["opt"])
        self.meta_opt.load_state_dict(data["meta_opt"])
        counters = data["counters"]
        self.meta_step = counters["meta_step"]
        self.batches = counters["batches"]
        self.skipped = counters["skipped"]
        carry = data["carry"]
        if carry is not None:
            carry = {**carry, "problems": Problems(**carry["problems"])}
        self.carry = carry
        torch.set_rng_state(data["rng"]["torch"])
