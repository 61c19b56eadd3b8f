"""Data-parallel meta-training over torch.distributed, started by torchrun.

torchrun starts N processes (ranks) and tells each its place through the environment
(WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Every rank holds the same learned
optimizer and Adam state and unrolls its own B trajectories: problems r*B .. r*B+B-1 of the
global batch j (tasks.MLPTaskFamily.sample with ``start``). The window meta-loss is a mean over
trajectories, so the mean over ranks of the ranks' meta-gradients is the meta-gradient of the
whole B x N batch: N ranks with B each take the same meta-steps as one process with B x N, up to
float rounding (estimator.apply_meta_step averages them; trainer.MetaTrainer keeps the rest
in step).

Without torchrun (no WORLD_SIZE, or WORLD_SIZE=1) nothing here runs and no process group exists.

Every collective goes through ``DistContext``, which turns a communication failure (another rank
died, raised, or did not answer within the timeout) into ``RankFailure`` with a message saying so,
instead of a bare backend error or a hang.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "FAULT_ENV",
    "DistContext",
    "RankFailure",
    "init_distributed",
    "inject_test_fault",
    "torchrun_ranks",
]

# Long enough for the slowest thing one rank does while the others wait at a collective (a
# checkpoint write, a validation chunk, a window on a loaded machine), short enough that a stuck
# rank does not hold a cluster for the default 30 minutes of gloo.
DEFAULT_TIMEOUT_S = 300.0

FAULT_ENV = "METATELEPORT_TEST_FAULT"


class RankFailure(RuntimeError):
    """The process group cannot be formed, or a collective failed: another rank died, raised an
    error, or was silent past the timeout."""


def torchrun_ranks() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from torchrun's environment, or None when this process
    was not started by torchrun or is its only rank (then the run is a plain single process)."""
    if "WORLD_SIZE" not in os.environ:
        return None
    values = {}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        raw = os.environ.get(key)
        try:
            values[key] = int(raw)
        except (TypeError, ValueError):
            raise RankFailure(
                f"WORLD_SIZE is set, so this looks like a torchrun worker, but {key}={raw!r} is "
                "not an integer: start distributed runs with torchrun"
            ) from None
    world, rank, local = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
    if not (world >= 1 and 0 <= rank < world and local >= 0):
        raise RankFailure(f"inconsistent torchrun environment: WORLD_SIZE={world}, RANK={rank}, "
                          f"LOCAL_RANK={local}")
    return None if world == 1 else (rank, world, local)


@dataclass(frozen=True)
class DistContext:
    """This rank's place in an initialized process group, and the collectives training uses."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    timeout_s: float

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run folder, TensorBoard and the progress bar."""
        return self.rank == 0

    @contextlib.contextmanager
    def _collective(self, what: str) -> Iterator[None]:
        try:
            yield
        except RuntimeError as err:  # DistBackendError and gloo's plain RuntimeErrors
            raise RankFailure(
                f"rank {self.rank} of {self.world_size}: {what} failed, so another rank died, "
                f"raised an error, or did not answer within --dist-timeout {self.timeout_s:g} s "
                f"(see that rank's output and torchrun's summary). Backend said: "
                f"{str(err).strip()}"
            ) from None

    def all_reduce_mean(self, flat: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of ``flat`` (any shape), identical on every rank."""
        return self.all_reduce_sum(flat) / self.world_size

    def all_reduce_sum(self, flat: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of ``flat``, identical on every rank (``flat`` is left alone)."""
        buf = flat.detach().to(self.device, copy=True)
        with self._collective("all_reduce"):
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        return buf.to(flat.device)

    def barrier(self) -> None:
        """Wait until every rank arrives here (timing starts and ends together)."""
        with self._collective("barrier"):
            dist.barrier()

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Overwrite every parameter and buffer of ``module`` with rank 0's, in one collective."""
        tensors = [t.data for t in [*module.parameters(), *module.buffers()]]
        if not tensors:
            return
        flat = torch.cat([t.reshape(-1).to(self.device) for t in tensors])
        with self._collective("broadcast of the initial parameters"):
            dist.broadcast(flat, src=0)
        offset = 0
        for t in tensors:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects; the others pass anything)."""
        box = [obj]
        with self._collective("broadcast"):
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_object(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0; None on the other ranks."""
        out = [None] * self.world_size if self.is_main else None
        with self._collective("gather"):
            dist.gather_object(obj, out, dst=0)
        return out

    def scatter_object(self, objs: list[Any] | None) -> Any:
        """Element ``rank`` of rank 0's list ``objs`` (the others pass None)."""
        box = [None]
        with self._collective("scatter"):
            dist.scatter_object_list(box, objs if self.is_main else None, src=0)
        return box[0]

    def close(self) -> None:
        """Leave the process group together with every other rank, which must call it too.

        A gloo worker thread lets go of a finished collective's tensors a moment after the
        caller has been woken; if that happens once the interpreter is shutting down, the
        process aborts ("terminate called without an active exception", SIGABRT: seen in 5 of
        about 170 two-node launches here; pytorch/pytorch#179291 describes it). So the last
        collective is an all-reduce on a tensor of our own, and we wait (at most 10 s) until
        the worker has released it, which its reference count shows, before destroying the group.
        """
        token = torch.zeros(1, device=self.device)
        unused = sys.getrefcount(token)
        with self._collective("the final all_reduce"):
            dist.all_reduce(token)
        deadline = time.monotonic() + 10.0
        while sys.getrefcount(token) > unused and time.monotonic() < deadline:
            time.sleep(0.001)
        dist.destroy_process_group()


def init_distributed(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> DistContext | None:
    """Join torchrun's process group, or return None when not started by torchrun.

    Backend gloo for ``device`` "cpu", nccl for "cuda" (rank r on cuda:LOCAL_RANK). Every
    collective, and the rendezvous itself, fails after ``timeout_s`` seconds without an answer.
    """
    ranks = torchrun_ranks()
    if ranks is None:
        return None
    rank, world, local = ranks
    if not timeout_s > 0:
        raise RankFailure(f"--dist-timeout must be > 0 seconds, got {timeout_s}")
    if device == "cuda":
        if local >= torch.cuda.device_count():
            raise RankFailure(
                f"rank {rank}: LOCAL_RANK={local}, but this node has only "
                f"{torch.cuda.device_count()} CUDA devices; start at most that many processes "
                "per node (--nproc_per_node)"
            )
        torch.cuda.set_device(local)
        backend, dev = "nccl", torch.device("cuda", local)
    else:
        backend, dev = "gloo", torch.device("cpu")
    timeout = datetime.timedelta(seconds=timeout_s)
    try:
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    except RuntimeError as err:  # DistStoreError, DistNetworkError, ...
        raise RankFailure(
            f"rank {rank} of {world}: could not join the process group within {timeout_s:g} s "
            f"({type(err).__name__}: {str(err).strip()})"
        ) from None
    return DistContext(rank, world, local, dev, timeout_s)


def inject_test_fault(rank: int, meta_step: int) -> None:
    """Test hook: ``METATELEPORT_TEST_FAULT=RANK:STEP:MODE`` makes rank RANK, right after
    meta-step STEP, die (MODE "exit": os._exit(1), no clean-up), raise (MODE "raise") or hang
    (MODE "hang"), so that tests can check the other ranks stop instead of waiting forever.
    Unset, as always outside tests, it does nothing."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    fault_rank, fault_step, mode = spec.split(":")
    if int(fault_rank) != rank or int(fault_step) != meta_step:
        return
    if mode == "exit":
        os._exit(1)
    if mode == "raise":
        raise RuntimeError(f"{FAULT_ENV}: rank {rank} raises after meta-step {meta_step}")
    if mode == "hang":
        while True:
            time.sleep(60)
    raise ValueError(f"{FAULT_ENV}={spec!r}: MODE must be exit, raise or hang")
