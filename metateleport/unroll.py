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

Data-parallel (distributed.py): each of N ranks carries its own B trajectories, problems
r*B .. r*B+B-1 of the global batch j; the meta-gradients are averaged over ranks before clipping,
and every decision (skip, new batch) is taken from all-reduced values, so all ranks keep
identical meta-parameters and Adam states and the run equals one process with batch B x N.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch.utils._pytree import tree_map

from .config import Config, build_family, build_optimizer
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
from .tasks import Problems, Split, mlp_loss

if TYPE_CHECKING:
    from .distributed import DistContext

__all__ = [
    "META_LOSS_ON",
    "MetaTrainer",
    "apply_meta_step",
    "build_family",
    "build_optimizer",
    "unroll_window",
    "window_meta_loss",
]

# Training batch j of a run with seed s uses task seed s * _SEED_STRIDE + j.
_SEED_STRIDE = 1_000_000


META_LOSSES = ("log", "sum")
#: what the meta-loss measures: the training loss, or the loss on held-out samples
META_LOSS_ON = ("train", "held_out")


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
    on: str = "train",
) -> tuple[torch.Tensor, list[torch.Tensor], State, StepContext]:
    """K inner steps from inner step t0, keeping the graph to the meta-parameters.

    Returns (losses (K, B) = L(W_{t0+1}) .. L(W_{t0+K}), the final weights and state, the last
    step's context with its stats). L(W_{t0}) is left out: it does not depend on the window.
    ``on``: "train", L is the training loss the optimizer descends; "held_out", L is the loss on
    the problems' held-out samples (X_test, Y_test), which the optimizer never sees: a
    meta-objective of generalization (META_LOSS_ON).
    """
    if on not in META_LOSS_ON:
        raise ValueError(f"on must be one of {META_LOSS_ON}, got {on!r}")
    p = problems
    if on == "held_out" and p.X_test is None:
        raise ValueError("a held-out meta-loss needs problems with held-out samples (X_test)")
    losses, ctx = [], None
    for k in range(K):
        ctx = StepContext(t0 + k, p, x_pinv)
        loss, weights, state = inner_step(opt, weights, state, ctx, loss_and_grad)
        if on == "held_out":
            losses.append(mlp_loss(weights, p.X_test, p.Y_test, p.slope))
        elif k > 0:
            losses.append(loss)
    if on == "train":
        losses.append(mlp_loss(weights, p.X, p.Y, p.slope) if loss_and_grad is None
                      else loss_and_grad(weights)[0])
    return torch.stack(losses), weights, state, ctx


def apply_meta_step(
    meta_opt: torch.optim.Optimizer, params, meta_loss: torch.Tensor, grad_clip: float,
    average: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[bool, float]:
    """Backpropagate ``meta_loss``, clip the meta-gradient norm and take the step, unless the
    loss or the norm is not finite, or the step would make a parameter non-finite: then the
    parameters are left as they were. Returns (applied, grad norm).

    ``average`` (data-parallel runs: DistContext.all_reduce_mean) maps a flat tensor to its mean
    over ranks. The meta-gradient is then replaced by its mean before clipping, and a loss that
    is not finite on any rank skips the step on every rank, so that all ranks stay identical.
    """
    params = list(params)
    meta_opt.zero_grad(set_to_none=True)
    finite = bool(torch.isfinite(meta_loss))
    if finite:
        meta_loss.backward()
    if average is not None:
        finite = _average_grads(params, finite, average)
    if not finite:
        meta_opt.zero_grad(set_to_none=True)
        return False, math.nan
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip).item()
    if not math.isfinite(grad_norm):
        meta_opt.zero_grad(set_to_none=True)
        return False, grad_norm
    before = [p.detach().clone() for p in params]
    meta_opt.step()
    if not all(bool(torch.isfinite(p).all()) for p in params):
        # A finite gradient can still overflow a parameter: keep the last finite ones.
        with torch.no_grad():
            for p, old in zip(params, before):
                p.copy_(old)
        meta_opt.zero_grad(set_to_none=True)
        return False, grad_norm
    return True, grad_norm


def _average_grads(
    params: list[torch.Tensor], finite: bool, average: Callable[[torch.Tensor], torch.Tensor]
) -> bool:
    """Replace every gradient by its mean over ranks, in one collective: the flattened gradients
    followed by a "loss not finite here" flag. Returns False (nothing replaced) when the flag is
    set on some rank. A rank whose loss is not finite sends zeros; every other rank has gradients
    for the same parameters, since all run the same graph."""
    ref = params[0]
    grads = [p.grad.reshape(-1) if finite and p.grad is not None else p.new_zeros(p.numel())
             for p in params]
    flat = average(torch.cat([*grads, ref.new_tensor([0.0 if finite else 1.0])]))
    if flat[-1] > 0:
        return False
    offset = 0
    for p in params:
        if p.grad is not None:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
    return True


def _to_device(obj, device: torch.device):
    return tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, obj)


class MetaTrainer:
    """Owns the learned optimizer, its Adam meta-optimizer, the carried trajectories and the
    counters. ``window()`` runs one truncation window; ``state_dict``/``load_state_dict`` make
    resuming bit-identical on CPU.

    With ``dist`` (a data-parallel run) this is rank ``dist.rank``'s trainer: ``cfg.train.
    batch_size`` is the per-rank batch B, ``cfg.train.trajectories`` the total over all ranks.
    Every rank must then call ``window``, ``validation_losses``, ``state_dict`` and
    ``load_state_dict`` in the same order: they are collectives."""

    def __init__(
        self, cfg: Config, device: str | torch.device = "cpu", dist: DistContext | None = None
    ):
        self.cfg = cfg
        self.device = torch.device(device)
        self.dist = dist
        self.rank, self.world_size = (0, 1) if dist is None else (dist.rank, dist.world_size)
        torch.manual_seed(cfg.train.seed)
        self.family = build_family(cfg)
        self.opt = build_optimizer(cfg).to(self.device)
        if dist is not None:
            # The seed already gives every rank the same initialization; this makes it certain.
            dist.broadcast_module(self.opt)
        self.meta_opt = torch.optim.Adam(self.opt.parameters(), lr=cfg.train.meta_lr)
        self.meta_step = 0  # windows processed, applied or skipped
        self.batches = 0  # trajectory batches drawn
        self.skipped = 0
        self.carry: dict | None = None
        tr = cfg.train
        self.windows_per_batch = tr.n_steps // tr.unroll
        global_batch = tr.batch_size * self.world_size
        self.total_meta_steps = math.ceil(tr.trajectories / global_batch) * self.windows_per_batch
        self.val_problems = self.family.sample(tr.val_problems, tr.seed, Split.VAL).to(self.device)

    @property
    def trajectories(self) -> int:
        """Trajectories started so far, by all ranks together."""
        return self.batches * self.cfg.train.batch_size * self.world_size

    def _new_batch(self) -> None:
        B = self.cfg.train.batch_size
        seed = self.cfg.train.seed * _SEED_STRIDE + self.batches
        problems = self.family.sample(B, seed, Split.TRAIN, start=self.rank * B).to(self.device)
        self.batches += 1
        self.carry = {
            "problems": problems,
            "x_pinv": input_pinv(problems.X, problems.weights[0]),
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
            self.opt, c["weights"], c["state"], c["problems"], c["x_pinv"], c["t"], tr.unroll,
            on=tr.meta_loss_on)
        meta_loss = window_meta_loss(losses, tr.meta_loss)
        stats = {"meta_lr": self.meta_opt.param_groups[0]["lr"], "t_end": c["t"] + tr.unroll}
        stats.update(self._batch_stats(meta_loss, losses[-1], ctx))
        average = None if self.dist is None else self.dist.all_reduce_mean
        applied, stats["grad_norm"] = apply_meta_step(
            self.meta_opt, self.opt.parameters(), meta_loss, tr.grad_clip, average)
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

    def _batch_stats(
        self, meta_loss: torch.Tensor, final_losses: torch.Tensor, ctx: StepContext
    ) -> dict[str, float]:
        """The meta-loss, the mean over trajectories of every step stat, and the median inner
        loss at the window's end, over the whole batch: in a distributed run one all-reduce
        averages the per-rank means and gathers the final losses (each rank fills its own slot of
        a zero vector, so the sum is their concatenation)."""
        means = torch.stack([meta_loss.detach().double(),
                             *(v.detach().float().mean().double() for v in ctx.stats.values())])
        finals = final_losses.detach().double()
        if self.dist is not None:
            B = finals.numel()
            slots = finals.new_zeros(self.world_size * B)
            slots[self.rank * B:(self.rank + 1) * B] = finals
            total = self.dist.all_reduce_sum(torch.cat([means, slots]))
            means, finals = total[:len(means)] / self.world_size, total[len(means):]
        values = means.tolist()
        return {"meta_loss": values[0], "inner_loss": finals.median().item(),
                **dict(zip(ctx.stats, values[1:]))}

    @property
    def done(self) -> bool:
        return self.meta_step >= self.total_meta_steps

    @torch.no_grad()
    def validate(self, problems: Problems | None = None) -> Trajectory:
        """Run the current optimizer over the whole horizon on the validation problems."""
        self.opt.eval()
        return run(self.opt, problems or self.val_problems, self.cfg.train.n_steps)

    def validation_losses(self) -> torch.Tensor | None:
        """Losses (n_steps + 1, V) of the current optimizer on the V validation problems.

        A distributed run splits the problems into contiguous chunks, one per rank, and gathers
        the losses on rank 0 (the other ranks get None): validation takes 1/N of the time, and
        no rank waits at a collective while another validates alone.
        """
        if self.dist is None:
            return self.validate().losses
        V = self.val_problems.batch_size
        lo, hi = V * self.rank // self.world_size, V * (self.rank + 1) // self.world_size
        mine = self.validate(self.val_problems[lo:hi]).losses.cpu() if hi > lo else None
        parts = self.dist.gather_object(mine)
        if parts is None:
            return None
        return torch.cat([p for p in parts if p is not None], dim=1)

    def state_dict(self) -> dict | None:
        """Everything needed to resume bit for bit.

        The carried trajectories and the RNG state belong to a rank. In a distributed run this
        is a collective: rank 0 gathers them into lists indexed by rank and returns the whole
        state, the other ranks get None. "world_size" records how many ranks wrote it.
        """
        own = {
            "carry": None if self.carry is None else _to_device(
                {**self.carry, "problems": dataclasses.asdict(self.carry["problems"])},
                torch.device("cpu")),
            # Problems come from seeded numpy generators of their own; only torch's global RNG
            # (parameter init) is process state.
            "rng": {"torch": torch.get_rng_state()},
        }
        if self.dist is not None:
            parts = self.dist.gather_object(own)
            if parts is None:
                return None
            own = {key: [part[key] for part in parts] for key in own}
        return {
            "opt": self.opt.state_dict(),
            "meta_opt": self.meta_opt.state_dict(),
            "counters": {"meta_step": self.meta_step, "batches": self.batches,
                         "skipped": self.skipped},
            "world_size": self.world_size,
            **own,
        }

    def load_state_dict(self, data: dict | None) -> None:
        """Restore a ``state_dict()`` written by a run of as many ranks as this one (states
        from before "world_size" was recorded come from single processes). In a distributed run
        every rank must call it: rank 0 passes the state, the others None, and each rank
        receives its own carried trajectories and RNG state."""
        if data is not None and data.get("world_size", 1) != self.world_size:
            raise ValueError(
                f"the state was written by a run of {data.get('world_size', 1)} process(es); "
                f"this one has {self.world_size}: resume with the same number of processes"
            )
        if self.dist is not None:
            data = self.dist.scatter_object(None if data is None else [
                {**data, "carry": data["carry"][r], "rng": data["rng"][r]}
                for r in range(self.world_size)])
        self.opt.load_state_dict(data["opt"])
        self.meta_opt.load_state_dict(data["meta_opt"])
        counters = data["counters"]
        self.meta_step = counters["meta_step"]
        self.batches = counters["batches"]
        self.skipped = counters["skipped"]
        carry = data["carry"]
        if carry is not None:
            carry = _to_device(carry, self.device)
            carry = {**carry, "problems": Problems(**carry["problems"])}
        self.carry = carry
        torch.set_rng_state(data["rng"]["torch"])
