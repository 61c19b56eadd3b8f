"""The outer trainer: meta-training a learned optimizer on a task family by truncated BPTT
(docs/design.md section 6), the estimator's windows (estimator.py) strung into a run.

B trajectories advance together. Every window of K inner steps ends with one Adam step on the
meta-parameters; the inner weights and LSTM states are then detached and carried into the next
window. After N inner steps a fresh batch is drawn from the training seed stream. A window that
is skipped (non-finite meta-loss or meta-gradient) ends its trajectories too: diverged weights
would only produce more skipped windows.

Data-parallel (distributed.py): each of N ranks carries its own B trajectories, problems
r*B .. r*B+B-1 of the global batch j; the meta-gradients are averaged over ranks before clipping,
and every decision (skip, new batch) is taken from all-reduced values, so all ranks keep
identical meta-parameters and Adam states and the run equals one process with batch B x N.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import torch
from torch.utils._pytree import tree_map

from .config import Config, build_family, build_optimizer
from .estimator import apply_meta_step, scale_growth, unroll_groups, window_meta_loss
from .inner import StepContext, Trajectory, detach_state, run, starting_weights
from .learned import LearnedOptimizer
from .networks import set_fused_training, set_recompute
from .symmetry import input_pinv
from .tasks import MixedProblems, Problems, Split, TaskFamily, held_out_mask

if TYPE_CHECKING:
    from .distributed import DistContext

__all__ = ["MetaTrainer"]

# Training batch j of a run with seed s uses task seed s * _SEED_STRIDE + j.
_SEED_STRIDE = 1_000_000


def _to_device(obj, device: torch.device):
    return tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, obj)


def validation_score(losses: torch.Tensor) -> float:
    """The score that selects a meta-training iterate (lower is better): the mean over the
    validation problems of the mean log-loss over steps 1..N, the whole horizon's meta-loss;
    +inf when any loss is not finite (a diverged problem must lose the selection). Log-losses
    weigh problems of every scale alike, as the task distribution needs."""
    logs = losses[1:].double().log()
    return float(logs.mean()) if bool(torch.isfinite(logs).all()) else math.inf


def _carry_to_dict(carry: dict) -> dict:
    if "mixed" in carry:
        return {**carry, "mixed": [_carry_to_dict(part) for part in carry["mixed"]]}
    return {**carry, "problems": dataclasses.asdict(carry["problems"])}


def _carry_from_dict(carry: dict) -> dict:
    if "mixed" in carry:
        return {**carry, "mixed": [_carry_from_dict(part) for part in carry["mixed"]]}
    return {**carry, "problems": Problems(**carry["problems"])}


class MetaTrainer:
    """Meta-trains ``opt`` on problems of ``family`` as ``cfg.train`` says.

    ``family`` (a tasks.TaskFamily) and ``opt`` (a LearnedOptimizer) are built by the caller,
    ``MetaTrainer(cfg, family=build_family(cfg), opt=build_optimizer(cfg))``, or from ``cfg``
    when not given: then torch is seeded with ``cfg.train.seed`` first, so that a seed always
    gives the same initial meta-parameters (a given ``opt`` is the caller's: nothing is
    reseeded). The trainer owns the Adam meta-optimizer, the carried trajectories and the
    counters. ``window()`` runs one truncation window; ``state_dict``/``load_state_dict`` make
    resuming bit-identical on CPU.

    With ``dist`` (a data-parallel run) this is rank ``dist.rank``'s trainer: ``cfg.train.
    batch_size`` is the per-rank batch B, ``cfg.train.trajectories`` the total over all ranks.
    Every rank must then call ``window``, ``validation_losses``, ``state_dict`` and
    ``load_state_dict`` in the same order: they are collectives."""

    def __init__(
        self, cfg: Config, device: str | torch.device = "cpu", dist: DistContext | None = None,
        *, family: TaskFamily | None = None, opt: LearnedOptimizer | None = None,
    ):
        self.cfg = cfg
        self.device = torch.device(device)
        self.dist = dist
        self.rank, self.world_size = (0, 1) if dist is None else (dist.rank, dist.world_size)
        if opt is None:
            torch.manual_seed(cfg.train.seed)
        self.family = build_family(cfg) if family is None else family
        self.opt = (build_optimizer(cfg) if opt is None else opt).to(self.device)
        set_recompute(self.opt, cfg.train.recompute_lstm)
        fused = cfg.train.fused_lstm
        set_fused_training(self.opt, self.device.type == "cpu" if fused is None else fused)
        if dist is not None:
            # The seed already gives every rank the same initialization; this makes it certain.
            dist.broadcast_module(self.opt)
        self.meta_opt = torch.optim.Adam(self.opt.parameters(), lr=cfg.train.meta_lr)
        if cfg.train.refused_weight > 0:
            guard = getattr(self.opt, "guard", None)
            if guard is None:
                raise ValueError("train.refused_weight > 0 needs a guard (model.guard)")
            guard.proposal_penalty = True
        self.meta_step = 0  # windows processed, applied or skipped
        self.batches = 0  # trajectory batches drawn
        self.skipped = 0
        self.carry: dict | None = None
        tr = cfg.train
        self.windows_per_batch = tr.n_steps // tr.unroll
        global_batch = tr.batch_size * self.world_size
        self.total_meta_steps = math.ceil(tr.trajectories / global_batch) * self.windows_per_batch
        self._val_problems: Problems | None = None
        #: the iterate with the best validation score so far: {"score", "meta_step",
        #: "state_dict"} (rank 0 of a distributed run; None before the first validation)
        self.best: dict | None = None

    @property
    def val_problems(self) -> Problems:
        """The ``cfg.train.val_problems`` validation problems, drawn on first use: a run that
        never validates never asks its family for them."""
        if self._val_problems is None:
            tr = self.cfg.train
            self._val_problems = self.family.sample(tr.val_problems, tr.seed,
                                                    Split.VAL).to(self.device)
        return self._val_problems

    @property
    def trajectories(self) -> int:
        """Trajectories started so far, by all ranks together."""
        return self.batches * self.cfg.train.batch_size * self.world_size

    def _carry_of(self, problems: Problems) -> dict:
        return {
            "problems": problems,
            "x_pinv": input_pinv(problems.X, problems.weights[0]),
            "weights": starting_weights(self.opt, problems.weights),
            "state": self.opt.init_state(problems),
            "t": 0,
        }

    def _new_batch(self) -> None:
        B = self.cfg.train.batch_size
        seed = self.cfg.train.seed * _SEED_STRIDE + self.batches
        problems = self.family.sample(B, seed, Split.TRAIN, start=self.rank * B).to(self.device)
        self.batches += 1
        if isinstance(problems, MixedProblems):
            # one carry per architecture; they advance together, window by window
            self.carry = {"mixed": [self._carry_of(g) for g in problems.groups], "t": 0}
        else:
            self.carry = self._carry_of(problems)

    def _parts(self) -> list[dict]:
        """The carried groups: one carry, or those of a mixed batch."""
        return self.carry["mixed"] if "mixed" in self.carry else [self.carry]

    def meta_lr(self) -> float:
        """The meta step size of the current window: constant, or cosine-decayed from meta_lr
        to 0 over the run (late windows then stop jolting the validation loss)."""
        tr = self.cfg.train
        if tr.meta_lr_schedule == "constant":
            return tr.meta_lr
        return 0.5 * tr.meta_lr * (1 + math.cos(math.pi * self.meta_step / self.total_meta_steps))

    def window(self) -> dict[str, float]:
        """Run one window of K inner steps and one meta-step. Returns scalar stats: "meta_lr",
        "t_end" (the inner step the window ended at), "meta_loss", "inner_loss" (the median
        loss at the window's end), the mean of every step stat, "grad_norm", "skipped"."""
        tr = self.cfg.train
        for group in self.meta_opt.param_groups:
            group["lr"] = self.meta_lr()
        if self.carry is None:
            self._new_batch()
        c = self.carry
        self.opt.train()
        parts = self._parts()
        # a mixed batch's groups advance in lockstep, each LSTM called once per inner step
        losses, weights, states, ctx = unroll_groups(
            self.opt, [part["weights"] for part in parts], [part["state"] for part in parts],
            [part["problems"] for part in parts], [part["x_pinv"] for part in parts], c["t"],
            tr.unroll, [self.family.loss_and_grad(part["problems"]) for part in parts],
            on=tr.meta_loss_on)
        meta_loss = window_meta_loss(losses, tr.meta_loss)
        if "guard_penalty" in ctx.stats:
            meta_loss = meta_loss + tr.refused_weight * ctx.stats["guard_penalty"].mean()
        growth = None
        if tr.scale_weight > 0:
            growth = scale_growth([part["weights"] for part in parts], weights,
                                  [part["problems"].X.shape[1] for part in parts])
            meta_loss = meta_loss + tr.scale_weight * growth.mean()
        stats = {"meta_lr": self.meta_opt.param_groups[0]["lr"], "t_end": c["t"] + tr.unroll}
        stats.update(self._batch_stats(meta_loss, losses[-1], ctx))
        if growth is not None:  # this rank's mean
            stats["scale_growth"] = float(growth.detach().mean())
        average = None if self.dist is None else self.dist.all_reduce_mean
        applied, stats["grad_norm"] = apply_meta_step(
            self.meta_opt, self.opt.parameters(), meta_loss, tr.grad_clip, average)
        self.meta_step += 1
        if applied:
            for part, w, state in zip(parts, weights, states):
                part["weights"], part["state"] = detach_state(w), detach_state(state)
                part["t"] += tr.unroll
            c["t"] = parts[0]["t"]
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
    def validate(self, problems: Problems | None = None, held_out: bool = False) -> Trajectory:
        """Run the current optimizer over the whole horizon on the validation problems
        (``held_out``: recording the held-out losses too, inner.run)."""
        self.opt.eval()
        problems = problems or self.val_problems
        # a mixed batch runs each group's batched MLP (inner.run)
        loss_and_grad = (None if isinstance(problems, MixedProblems)
                         else self.family.loss_and_grad(problems))
        return run(self.opt, problems, self.cfg.train.n_steps, loss_and_grad, held_out)

    def _selection_losses(self, problems: Problems | MixedProblems) -> torch.Tensor:
        """Losses (n_steps + 1, B) of the current optimizer on ``problems`` that the validation
        score reads, as ``cfg.train.validate_on`` says: the training losses ("train"), or the
        held-out losses of the problems that have held-out samples and the training losses of
        the others ("held_out_where_available"; "held_out": every problem has them)."""
        on = self.cfg.train.validate_on
        traj = self.validate(problems, held_out=on != "train")
        if on == "train":
            return traj.losses
        has = held_out_mask(problems).to(traj.losses.device)
        if on == "held_out" and not bool(has.all()):
            raise ValueError("train.validate_on: held_out needs validation problems that all "
                             "have held-out samples")
        return torch.where(has, traj.held_out_losses, traj.losses)

    def validation_losses(self) -> torch.Tensor | None:
        """Losses (n_steps + 1, V) of the current optimizer on the V validation problems, those
        the validation score reads (``cfg.train.validate_on``: ``_selection_losses``).

        A distributed run splits the problems into contiguous chunks, one per rank, and gathers
        the losses on rank 0 (the other ranks get None): validation takes 1/N of the time, and
        no rank waits at a collective while another validates alone.
        """
        if self.dist is None:
            return self._selection_losses(self.val_problems)
        V = self.val_problems.batch_size
        lo, hi = V * self.rank // self.world_size, V * (self.rank + 1) // self.world_size
        mine = self._selection_losses(self.val_problems[lo:hi]).cpu() if hi > lo else None
        parts = self.dist.gather_object(mine)
        if parts is None:
            return None
        return torch.cat([p for p in parts if p is not None], dim=1)

    def record_validation(self, losses: torch.Tensor) -> tuple[float, bool]:
        """Score validation ``losses`` (n_steps + 1, V) of the current meta-parameters and keep
        them if they are the best so far. Returns (score, whether they are)."""
        score = validation_score(losses)
        better = self.best is None or score < self.best["score"]
        if better:
            self.best = {"score": score, "meta_step": self.meta_step, "state_dict": {
                k: v.detach().cpu().clone() for k, v in self.opt.state_dict().items()}}
        return score, better

    def state_dict(self) -> dict | None:
        """Everything needed to resume bit for bit.

        The carried trajectories and the RNG state belong to a rank. In a distributed run this
        is a collective: rank 0 gathers them into lists indexed by rank and returns the whole
        state, the other ranks get None. "world_size" records how many ranks wrote it.
        """
        own = {
            "carry": None if self.carry is None else _to_device(_carry_to_dict(self.carry),
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
            "best": self.best,
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
        self.carry = None if carry is None else _carry_from_dict(_to_device(carry, self.device))
        self.best = data.get("best")
        torch.set_rng_state(data["rng"]["torch"])
