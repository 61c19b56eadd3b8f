"""A user's own torch.nn.Module as the optimizee, through ``higher.monkeypatch`` (docs/design.md
section 6).

The module must be the MLP of docs/design.md section 2 written the torch way: ``nn.Linear``
layers (with or without biases) interleaved with ``nn.LeakyReLU`` of one common slope, taking
rows as samples,

    module(X_rows) = (W_L sigma(... sigma(W_1 X_rows^T)))^T,   X_rows (n, d_0),

with nn.Linear's weight (out, in) being exactly W_k, and [weight | bias] when it has a bias.
``ModuleProblem`` turns it and its data into the batched column convention with B = 1
(``tasks.Problems``) and supplies the loss and its gradients computed by the module itself, as
a functional model of explicit fast weights. The learned optimizer and ``inner.inner_step`` are
the very ones of the batched path; only the loss-and-gradient callable differs. The teleport
still reads ``ctx.problems``: the group action is defined on the MLP's weights, and
``ModuleProblem`` checks that the module computes that MLP.

``ModuleTaskFamily`` makes a factory of such modules and their data a task family
(tasks.TaskFamily), which trainer.MetaTrainer meta-trains on like any other;
``meta_train_module`` is that trainer run over a given number of trajectories.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import higher
import torch
from torch import nn

from .config import Config, TrainConfig
from .estimator import META_LOSSES
from .inner import InnerOptimizer, LossAndGrad, Trajectory, run
from .mlp import mlp_forward
from .symmetry import input_pinv
from .tasks import Problems, Split, TaskFamily
from .trainer import MetaTrainer

__all__ = [
    "ModuleProblem",
    "ModuleSpec",
    "ModuleTaskFamily",
    "inspect_module",
    "load_weights_into",
    "meta_train_module",
    "module_weights",
    "run_module",
    "write_weights",
]


@dataclass(frozen=True)
class ModuleSpec:
    """What ``inspect_module`` reads from a valid module.

    names: qualified names of the L Linear layers, in order; linears: those layers;
    widths: (d_0, ..., d_L); slope: the common LeakyReLU negative slope.
    """

    names: tuple[str, ...]
    linears: tuple[nn.Linear, ...]
    widths: tuple[int, ...]
    slope: float


def _leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name or type(module).__name__, m) for name, m in module.named_modules()
            if next(m.children(), None) is None]


def inspect_module(module: nn.Module, allow_bias: bool = False) -> ModuleSpec:
    """Check that ``module`` is a bias-free LeakyReLU MLP and read its layers, widths and slope.

    Accepts an ``nn.Sequential`` (possibly nested) or any nn.Module whose parameters are, in
    order, the weights of L >= 2 ``nn.Linear(..., bias=False)`` layers and whose other layers are
    ``nn.LeakyReLU`` (``nn.Identity`` is ignored). Raises ValueError naming the offending layer
    when a Linear has a bias, a layer is of another kind (ReLU, Tanh, Dropout, ...), slopes differ
    or make LeakyReLU non-invertible, shapes do not chain, or, for an nn.Sequential, two Linear
    layers or two activations follow each other. ``allow_bias``: Linear layers may have biases
    (optim.LearnedOpt.teleport, which moves them through [h; 1]); the parameters need not then
    come in layer order (higher's fast weights are not involved).
    """
    linears: list[tuple[str, nn.Linear]] = []
    acts: list[tuple[str, nn.LeakyReLU]] = []
    order: list[tuple[str, str]] = []
    for name, m in _leaves(module):
        if isinstance(m, nn.Linear):
            if m.bias is not None and not allow_bias:
                raise ValueError(
                    f"layer {name!r} ({m}) has a bias; the group action is defined for "
                    "bias-free layers only: use nn.Linear(..., bias=False)"
                )
            linears.append((name, m))
            order.append((name, "linear"))
        elif isinstance(m, nn.LeakyReLU):
            acts.append((name, m))
            order.append((name, "act"))
        elif not isinstance(m, nn.Identity):
            raise ValueError(
                f"layer {name!r} is {type(m).__name__}, not nn.Linear or nn.LeakyReLU; the group "
                "action needs the invertible activation LeakyReLU between bias-free Linear layers"
            )
    if len(linears) < 2:
        raise ValueError(f"the module needs at least 2 nn.Linear layers, found {len(linears)}")
    if not acts:
        raise ValueError("the module has no nn.LeakyReLU layer, so its slope cannot be read")
    first_name, first = acts[0]
    slope = float(first.negative_slope)
    for name, act in acts:
        if float(act.negative_slope) != slope:
            raise ValueError(
                f"layer {name!r} has LeakyReLU slope {act.negative_slope}, but layer "
                f"{first_name!r} has {slope}: all activations must share one slope"
            )
    if not (slope > 0 and slope != 1):
        raise ValueError(
            f"layer {first_name!r} has LeakyReLU slope {slope}; it must be > 0 and != 1 for "
            "the activation to be invertible"
        )
    weights = [lin.weight for _, lin in linears]
    owned = [*weights, *(lin.bias for _, lin in linears if lin.bias is not None)]
    for pname, param in module.named_parameters():
        if not any(param is w for w in owned):
            what = "a weight or bias" if allow_bias else "the weight"
            raise ValueError(f"parameter {pname!r} is not {what} of an nn.Linear layer")
    # higher passes fast weights in the order of module.parameters(); they must be W_1..W_L.
    if not allow_bias and [id(p) for p in module.parameters()] != [id(w) for w in weights]:
        raise ValueError("the module's parameters are not the Linear weights in layer order")
    for (prev_name, prev), (name, lin) in zip(linears[:-1], linears[1:]):
        if lin.in_features != prev.out_features:
            raise ValueError(
                f"layer {name!r} takes {lin.in_features} inputs, but the previous Linear layer "
                f"{prev_name!r} outputs {prev.out_features}"
            )
    if isinstance(module, nn.Sequential):
        expected = "linear"
        for name, kind in order:
            if kind != expected:
                what = "Linear layer" if kind == "linear" else "activation"
                raise ValueError(
                    f"layer {name!r} is a second {what} in a row; the layers must alternate "
                    "Linear, LeakyReLU, ..., Linear"
                )
            expected = "act" if kind == "linear" else "linear"
        if order[-1][1] != "linear":
            raise ValueError(f"layer {order[-1][0]!r}: the last layer must be a Linear layer")
    widths = (linears[0][1].in_features, *(lin.out_features for _, lin in linears))
    return ModuleSpec(tuple(n for n, _ in linears), tuple(m for _, m in linears), widths, slope)


def module_weights(spec: ModuleSpec) -> list[torch.Tensor]:
    """The Linear layers' weights as the batched path's [W_1 (1, d_1, d_0), ..., W_L], detached
    copies; a layer with a bias gets it as a last column, [A | b] (1, d_k, d_{k-1} + 1)."""
    out = []
    for lin in spec.linears:
        w = lin.weight.detach()
        if lin.bias is not None:
            w = torch.cat([w, lin.bias.detach()[:, None]], dim=1)
        out.append(w.clone().unsqueeze(0))
    return out


def write_weights(spec: ModuleSpec, weights: list[torch.Tensor]) -> None:
    """Copy [W_1 (1, d_1, d_0) or (d_1, d_0), ..., W_L] into the Linear layers of ``spec`` (in
    place, no graph); a layer with a bias takes it from a last column, as ``module_weights``
    writes it. Every shape is checked before anything is copied."""
    if len(weights) != len(spec.linears):
        raise ValueError(
            f"got {len(weights)} weight matrices for a module with {len(spec.linears)} "
            "Linear layers"
        )
    weights = [w[0] if w.dim() == 3 and w.shape[0] == 1 else w for w in weights]
    for name, lin, w in zip(spec.names, spec.linears, weights):
        shape = (lin.out_features, lin.in_features + (lin.bias is not None))
        if w.shape != shape:
            raise ValueError(f"layer {name!r} has weight shape {shape}"
                             f"{' with its bias column' if lin.bias is not None else ''}, got "
                             f"{tuple(w.shape)}")
    with torch.no_grad():
        for lin, w in zip(spec.linears, weights):
            lin.weight.copy_(w[:, :lin.in_features])
            if lin.bias is not None:
                lin.bias.copy_(w[:, lin.in_features])


def load_weights_into(module: nn.Module, weights: list[torch.Tensor]) -> None:
    """Copy weights [W_1 (1, d_1, d_0) or (d_1, d_0), ..., W_L] into the module's Linear layers
    (in place, no graph), e.g. the final weights of ``run_module``."""
    write_weights(inspect_module(module, allow_bias=True), weights)


class ModuleProblem:
    """A user's module and data as one batched problem (B = 1) with the module's own loss.

    module: a valid module (see ``inspect_module``); X_rows: (n, d_0) and Y_rows: (n, d_L),
    rows are samples, moved to the module's dtype and device.

    Attributes: ``spec``; ``problems``: Problems with X (1, d_0, n), Y (1, d_L, n), the module's
    current weights [(1, d_k, d_{k-1})] (copies) and its slope; ``x_pinv``: X^+ (1, n, d_0), or
    None when n > d_0 (then only optimizers that do not teleport can run: the group action
    raises RankError naming the layer).

    The module is never modified: the functional model works on copies of its weights and
    takes explicit fast weights; ``load_weights_into`` writes results back.
    """

    def __init__(self, module: nn.Module, X_rows: torch.Tensor, Y_rows: torch.Tensor):
        self.spec = inspect_module(module, allow_bias=True)
        # higher takes fast weights in the order of module.parameters(): (layer, part) of each,
        # part 0 the weight A_k, 1 the bias b_k of W_k = [A_k | b_k]
        where = {id(p): (k, i) for k, lin in enumerate(self.spec.linears)
                 for i, p in enumerate((lin.weight, lin.bias)) if p is not None}
        self._order = [where[id(p)] for p in module.parameters()]
        ref = self.spec.linears[0].weight
        X_rows = torch.as_tensor(X_rows).to(device=ref.device, dtype=ref.dtype)
        Y_rows = torch.as_tensor(Y_rows).to(device=ref.device, dtype=ref.dtype)
        d = self.spec.widths
        if X_rows.dim() != 2 or X_rows.shape[1] != d[0]:
            raise ValueError(f"X_rows must be (n, d_0={d[0]}), got shape {tuple(X_rows.shape)}")
        if Y_rows.shape != (X_rows.shape[0], d[-1]):
            raise ValueError(
                f"Y_rows must be (n={X_rows.shape[0]}, d_L={d[-1]}), got shape "
                f"{tuple(Y_rows.shape)}"
            )
        for name, t in (("X_rows", X_rows), ("Y_rows", Y_rows),
                        *((f"weight of layer {n!r}", lin.weight)
                          for n, lin in zip(self.spec.names, self.spec.linears))):
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise ValueError(f"{name} holds {bad} non-finite value(s) (NaN or inf); "
                                 "nothing can be optimized from them")
        self.module = module
        self.X_rows, self.Y_rows = X_rows, Y_rows
        weights = module_weights(self.spec)
        self.problems = Problems(X_rows.T.unsqueeze(0).contiguous(),
                                 Y_rows.T.unsqueeze(0).contiguous(), weights, self.spec.slope)
        self._fmodel = higher.monkeypatch(module, copy_initial_weights=True)
        self._check_forward()
        self.x_pinv = input_pinv(self.problems.X, weights[0])

    def _check_forward(self) -> None:
        # The teleport acts on ctx.problems with the MLP's formulas: a module that computes
        # something else (a custom forward, layers used out of order) would be teleported wrongly.
        p = self.problems
        with torch.no_grad():
            out = self.module(self.X_rows)
            ref = mlp_forward(p.weights, p.X, p.slope)[0][0].T
        if out.shape != ref.shape:
            raise ValueError(
                f"the module outputs shape {tuple(out.shape)}, the MLP of its Linear layers "
                f"{tuple(ref.shape)}"
            )
        scale = ref.abs().max()
        # Overflowing outputs cannot be compared; their loss is not finite anyway.
        tol = math.sqrt(torch.finfo(ref.dtype).eps)
        if torch.isfinite(scale) and (out - ref).abs().max() > tol * scale:
            raise ValueError(
                "the module's forward does not compute W_L sigma(... sigma(W_1 x)) with its "
                f"Linear layers {list(self.spec.names)} and LeakyReLU({self.spec.slope}) in order"
            )

    def loss(self, weights: list[torch.Tensor]) -> torch.Tensor:
        """weights [(1, d_k, d_{k-1})] -> 1/2 ||module(X_rows) - Y_rows||_F^2, shape (1,), with
        the graph to ``weights``."""
        if any(w.dim() != 3 or w.shape[0] != 1 for w in weights):
            shapes = [tuple(w.shape) for w in weights]
            raise ValueError(f"expected weights of shape (1, d_k, d_(k-1)), got {shapes}")
        return self.batched_loss(weights)

    def batched_loss(self, weights: list[torch.Tensor]) -> torch.Tensor:
        """weights [(B, d_k, d_{k-1})], B modules of this one's structure on its data -> their
        losses (B,), with the graph to ``weights``: one functional forward per module."""
        losses = []
        biased = [lin.bias is not None for lin in self.spec.linears]
        for b in range(weights[0].shape[0]):
            parts = [((w[b, :, :-1], w[b, :, -1]) if has else (w[b],))
                     for w, has in zip(weights, biased)]
            out = self._fmodel(self.X_rows, params=[parts[k][i] for k, i in self._order])
            losses.append(0.5 * (out - self.Y_rows).pow(2).sum().reshape(1))
        return torch.cat(losses)

    def loss_and_grad(
        self, weights: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The ``loss_and_grad`` of ``optimizers.inner_step``: (loss (1,) with the graph to
        ``weights``, detached gradients [(1, d_k, d_{k-1})])."""
        return _differentiate(self.loss, weights)


def _differentiate(
    loss_fn: Callable[[list[torch.Tensor]], torch.Tensor], weights: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(loss_fn(weights) (B,) with its graph, its detached gradients w.r.t. ``weights``)."""
    with torch.enable_grad():
        # Weights carried without a graph (the start of a window, evaluation under no_grad)
        # still need a leaf to differentiate against.
        weights = [w if w.requires_grad else w.detach().requires_grad_() for w in weights]
        loss = loss_fn(weights)
        # retain_graph: meta-training later backpropagates through this same loss.
        grads = torch.autograd.grad(loss.sum(), weights, retain_graph=True)
    return loss, [g.detach().reshape(w.shape) for g, w in zip(grads, weights)]


class ModuleTaskFamily(TaskFamily):
    """A user's module factory and data as a task family (tasks.TaskFamily).

    make_module(i) -> a freshly initialized valid module (``inspect_module``) for problem i,
    every one of the same widths and slope; X_rows (n, d_0) and Y_rows (n, d_L): the data of
    every problem, rows are samples. ``sample`` returns Problems with X (B, d_0, n), Y (B, d_L,
    n) and the modules' weights [(B, d_k, d_{k-1})]; ``loss_and_grad`` runs the module through
    ``higher`` as ``ModuleProblem`` does, one forward per problem.

    The factory is the family's only randomness, so the family has a single training stream:
    problem k of the stream at seed s is make_module(s * problems_per_seed + k), k <
    ``problems_per_seed``. MetaTrainer's batch j at train.seed 0 is seed j, so with the default
    of 1 (batch_size 1, one process) its trajectory j is make_module(j); a trainer of B problems
    per batch over N processes needs problems_per_seed >= B x N. There are no validation or test
    streams: validate on problems of your own (``run_module``).

    A valid module computes the MLP of its Linear layers (``ModuleProblem`` checks it), so the
    functional model of the first module drawn serves every problem of the family.
    """

    name = "module"

    def __init__(
        self, make_module: Callable[[int], nn.Module], X_rows: torch.Tensor, Y_rows: torch.Tensor,
        problems_per_seed: int = 1,
    ) -> None:
        if problems_per_seed < 1:
            raise ValueError(f"problems_per_seed must be >= 1, got {problems_per_seed}")
        self.make_module = make_module
        self.X_rows, self.Y_rows = X_rows, Y_rows
        self.problems_per_seed = problems_per_seed
        # The factory is called only by sample (its calls may draw from torch's global RNG).
        self._template: ModuleProblem | None = None

    def problem(self, i: int) -> ModuleProblem:
        """make_module(i) and the data as a ModuleProblem, checked against the family's first."""
        mp = ModuleProblem(self.make_module(i), self.X_rows, self.Y_rows)
        ref = self._template
        if ref is None:
            self._template = mp
        elif (mp.spec.widths, mp.spec.slope) != (ref.spec.widths, ref.spec.slope):
            raise ValueError(
                f"make_module({i}) has widths {mp.spec.widths} and slope {mp.spec.slope}, the "
                f"family's first module {ref.spec.widths} and {ref.spec.slope}: every module "
                "of a family must share them"
            )
        return mp

    def sample(self, batch_size: int, seed: int, split: Split | str = Split.TRAIN,
               start: int = 0) -> Problems:
        if (split.name if isinstance(split, Split) else str(split)).lower() != "train":
            raise ValueError(f"a module family has training problems only, not split {split!r}")
        if not (batch_size >= 1 and 0 <= start and start + batch_size <= self.problems_per_seed):
            raise ValueError(
                f"problems {start} .. {start + batch_size - 1} of a seed asked for, but this "
                f"family holds problems_per_seed={self.problems_per_seed} per seed: build it "
                "with problems_per_seed >= the batch size over all processes"
            )
        first = seed * self.problems_per_seed + start
        parts = [self.problem(first + k).problems for k in range(batch_size)]
        return Problems(torch.cat([p.X for p in parts]), torch.cat([p.Y for p in parts]),
                        [torch.cat(ws) for ws in zip(*(p.weights for p in parts))],
                        parts[0].slope)

    def config(self) -> dict:
        raise NotImplementedError("a module family is built from the user's code, not from a "
                                  "config")

    def loss_and_grad(self, problems: Problems) -> LossAndGrad:
        if self._template is None:
            # Problems restored from a checkpoint, before any sample in this process: a module
            # of the family gives the functional model; torch's RNG is left as it was.
            with torch.random.fork_rng():
                self.problem(0)
        template = self._template
        widths = (problems.X.shape[1], *(w.shape[1] for w in problems.weights))
        if widths != template.spec.widths:
            raise ValueError(f"problems of widths {widths} are not of this family "
                             f"({template.spec.widths})")

        def module_loss_and_grad(weights):
            return _differentiate(template.batched_loss, weights)

        return module_loss_and_grad


def run_module(
    opt: InnerOptimizer, module: nn.Module, X_rows: torch.Tensor, Y_rows: torch.Tensor,
    n_steps: int,
) -> Trajectory:
    """Run ``opt`` for ``n_steps`` inner steps on the module's weights, without graph.

    X_rows: (n, d_0), Y_rows: (n, d_L). Returns a Trajectory with losses (n_steps + 1, 1),
    seconds (n_steps + 1,) and the final weights [(1, d_k, d_{k-1})]; the module itself is left
    unchanged (``load_weights_into(module, traj.weights)`` installs the result).
    """
    mp = ModuleProblem(module, X_rows, Y_rows)
    return run(opt, mp.problems, n_steps, mp.loss_and_grad)


def meta_train_module(
    opt: nn.Module,
    make_module: Callable[[int], nn.Module],
    X_rows: torch.Tensor,
    Y_rows: torch.Tensor,
    n_trajectories: int,
    n_steps: int = 100,
    unroll: int = 10,
    meta_lr: float = 1e-3,
    grad_clip: float = 1.0,
    meta_loss: str = "log",
    *,
    on_window: Callable[[dict[str, float]], None] | None = None,
) -> list[float]:
    """Meta-train ``opt`` (a LearnedOptimizer, in place) on a user's module by truncated BPTT:
    trainer.MetaTrainer on a ``ModuleTaskFamily``, one trajectory at a time.

    make_module(i) must return a freshly initialized module for trajectory i (a different
    initialization per i); X_rows (n, d_0) and Y_rows (n, d_L) are the data of every trajectory.
    Each trajectory of ``n_steps`` inner steps gives n_steps // unroll windows; each window's
    meta-loss (``estimator.window_meta_loss`` of the losses reached at steps t+1..t+K, "log" or
    "sum") takes one Adam step (lr ``meta_lr``) on opt.parameters() after clipping the
    meta-gradient norm at ``grad_clip``; weights and LSTM states are then detached and carried on.
    A window whose meta-loss or meta-gradient norm is not finite is skipped (no step), counted,
    and ends its trajectory.

    on_window, if given, receives per window {"trajectory", "window", "meta_loss", "grad_norm",
    "inner_loss" (loss at the window's end), "skipped" (windows skipped so far)}.
    Returns the meta-loss of every window, skipped ones included, in order.
    """
    if meta_loss not in META_LOSSES:
        raise ValueError(f"meta_loss must be one of {META_LOSSES}, got {meta_loss!r}")
    if not (n_trajectories >= 1 and unroll >= 1 and n_steps >= unroll):
        raise ValueError(
            f"need n_trajectories >= 1 and n_steps >= unroll >= 1, got {n_trajectories}, "
            f"{n_steps}, {unroll}"
        )
    # The trainer ends a trajectory at n_steps: a whole number of windows, as here.
    train = TrainConfig(batch_size=1, n_steps=n_steps // unroll * unroll, unroll=unroll,
                        trajectories=n_trajectories, meta_lr=meta_lr,
                        meta_lr_schedule="constant", grad_clip=grad_clip, meta_loss=meta_loss)
    device = next(opt.parameters()).device
    trainer = MetaTrainer(Config(train=train), device,
                          family=ModuleTaskFamily(make_module, X_rows, Y_rows), opt=opt)
    history: list[float] = []
    # A skipped window ends its trajectory early: count trajectories, not windows.
    while trainer.carry is not None or trainer.batches < n_trajectories:
        stats = trainer.window()
        history.append(stats["meta_loss"])
        if on_window is not None:
            on_window({"trajectory": trainer.batches - 1, "window": stats["t_end"] // unroll - 1,
                       "meta_loss": stats["meta_loss"], "grad_norm": stats["grad_norm"],
                       "inner_loss": stats["inner_loss"], "skipped": stats["skipped"]})
    return history
