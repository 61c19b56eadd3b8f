"""The matrix-multiply floor (``python -m metateleport.bench --floor``, issue 19 item 1).

Measures the machine's fp32 matrix-multiply rate (GFLOP/s of square ``matmul_size`` products, on
1 thread and on the run's thread count) and, in the same run, the coordinatewise LSTM forward
and forward+backward at the coordinate counts the optimizers see, and one step of
``LearnedTorchOptimizer`` (checkpoints/update.pt; fused, its default, and with nn.LSTM's
kernel) and of ``torch.optim.Adam`` on an MLP
(784-128-10: 101,770 parameters). Every timed thing is run once per round, the rounds
interleaved, and its best round is kept: on a loaded machine the best is the least disturbed,
and the ratios then compare measurements taken side by side.

FLOPs counted: the LSTM's gate matmuls only, per layer and coordinate 4H x (in + H)
multiply-adds, i.e. 2 x 4H x (in + H) FLOPs (in = the layer's input width: the net's input
features for layer 1, H above it); the gate nonlinearities, the log-sign preprocessing, the
head and the bias adds are not counted. Forward+backward counts 3x the forward (the backward
has two matmuls of the forward's size per layer: the gradients of the inputs and of the
weights). The floor of an optimizer step is its LSTM forward FLOPs over the matmul rate.

The parts of that forward are timed too, each as one torch kernel writing into a preallocated
output, at the step's coordinate count and the LSTM's real shapes: per layer the gate matmul
((N, in + H) x (in + H, 4H)), the sigmoid of the three gates (N, 3H), the tanh of the cell
input and of the new cell (N, H) each, and the cell update c' = f c + i g, h = o tanh(c')
(three multiplies and an add on (N, H)). Their sum is what a forward made of torch's own
kernels cannot go below; the gap between it and the matmul floor is the cost of the thin
matmuls and the nonlinearities, which no layout of the coordinate batch removes.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

__all__ = ["bench_floor", "lstm_flops"]

#: the clocks reported: wall time, and the process's CPU time (all its threads), which a loaded
#: machine's preemption does not inflate; on 1 thread the CPU-time figures are the undisturbed
#: ones, on more they charge every spinning thread
CLOCKS = ("wall", "cpu")
CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "update.pt"


def lstm_flops(n: int, in_features: int, hidden: int, layers: int) -> int:
    """Forward FLOPs of the gate matmuls of a ``layers``-layer LSTM on ``n`` coordinates, one
    time step: sum over layers of n x 2 x 4H x (in_l + H)."""
    widths = [in_features] + [hidden] * (layers - 1)
    return sum(n * 2 * 4 * hidden * (w + hidden) for w in widths)


def _lstm_parts(n: int, in_features: int, hidden: int, layers: int) -> dict:
    """Closures, one torch kernel each, for the parts of an LSTM forward on ``n`` coordinates
    (see the module docstring), keyed "<part>_l<layer>"."""
    parts = {}
    for layer, width in enumerate([in_features] + [hidden] * (layers - 1)):
        x, w = torch.randn(n, width + hidden), torch.randn(width + hidden, 4 * hidden)
        gates = torch.empty(n, 4 * hidden)
        three, one = torch.randn(n, 3 * hidden), torch.randn(n, hidden)
        out3, out1, c = torch.empty_like(three), torch.empty_like(one), torch.randn(n, hidden)
        f, i, g, o = (torch.rand(n, hidden) for _ in range(4))

        def cell(f=f, i=i, g=g, o=o, c=c, out=out1):
            torch.mul(f, c, out=out)
            out.addcmul_(i, g)
            torch.mul(o, out, out=out)

        parts[f"matmul_l{layer}"] = lambda x=x, w=w, gates=gates: torch.mm(x, w, out=gates)
        parts[f"sigmoid_l{layer}"] = lambda t=three, o=out3: torch.sigmoid(t, out=o)
        parts[f"tanh_l{layer}"] = lambda t=one, o=out1: (torch.tanh(t, out=o),
                                                        torch.tanh(t, out=o))
        parts[f"cell_l{layer}"] = cell
    return parts


def _timed(fn, inner: int) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(inner):
        fn()
    return {"wall": (time.perf_counter() - wall) / inner,
            "cpu": (time.process_time() - cpu) / inner}


def bench_floor(
    sizes: tuple[int, ...] = (10_000, 100_000), matmul_size: int = 768, rounds: int = 7,
    steps: int = 10, widths: tuple[int, ...] = (784, 128, 10), hidden: int = 20,
    layers: int = 2, checkpoint: Path = CHECKPOINT,
) -> dict:
    """Seconds, GFLOP/s and fractions of the matmul rate (see the module docstring): best of
    ``rounds`` interleaved rounds; an optimizer step is timed as the mean of ``steps`` steps
    within a round. ``widths``: the MLP the optimizers step (gradients fixed)."""
    from .networks import CoordinateLSTM
    from .torch_optim import LearnedTorchOptimizer

    threads = torch.get_num_threads()
    torch.manual_seed(0)
    a, b = torch.randn(matmul_size, matmul_size), torch.randn(matmul_size, matmul_size)

    def matmul_1thread():
        torch.set_num_threads(1)
        try:
            torch.mm(a, b)
        finally:
            torch.set_num_threads(threads)

    tasks = {"matmul_1thread": (matmul_1thread, 1), "matmul": (lambda: torch.mm(a, b), 1)}
    lstm = CoordinateLSTM(2, hidden, layers)
    for n in sizes:
        x = torch.randn(n, 2)
        x_grad = x.clone().requires_grad_()
        state = lstm.init_state(n, x)

        def forward(x=x, state=state):
            with torch.no_grad():
                lstm(x, state)

        def forward_backward(x=x_grad, state=state):
            lstm.zero_grad()
            lstm(x, state)[0].sum().backward()

        tasks[f"lstm_forward_{n}"] = (forward, 1)
        tasks[f"lstm_forward_backward_{n}"] = (forward_backward, 1)

    mlp = [nn.Linear(i, o) for i, o in zip(widths[:-1], widths[1:])]
    model = nn.Sequential(*[m for layer in mlp for m in (layer, nn.LeakyReLU(0.1))][:-1])
    X = torch.rand(64, widths[0])
    nn.functional.cross_entropy(model(X), torch.randint(0, widths[-1], (64,))).backward()
    adam = torch.optim.Adam(model.parameters(), 1e-3)
    learned = LearnedTorchOptimizer(model.parameters(), checkpoint)
    kernel = LearnedTorchOptimizer(model.parameters(), checkpoint, fused=False)
    tasks["adam_step"] = (adam.step, steps)
    tasks["learned_step"] = (learned.step, steps)
    tasks["learned_kernel_step"] = (kernel.step, steps)
    net = learned.learned.update_net.lstm
    coords = sum(p.numel() for p in model.parameters())
    parts = _lstm_parts(coords, net.lstm.input_size, net.hidden_size, net.num_layers)
    tasks.update({f"part_{k}": (fn, 1) for k, fn in parts.items()})

    for fn, _ in tasks.values():  # warm-up: oneDNN primitives, the optimizers' states
        fn()
    best = {clock: {key: float("inf") for key in tasks} for clock in CLOCKS}
    for _ in range(rounds):
        for key, (fn, inner) in tasks.items():
            for clock, seconds in _timed(fn, inner).items():
                best[clock][key] = min(best[clock][key], seconds)
    step_flops = lstm_flops(coords, net.lstm.input_size, net.hidden_size, net.num_layers)
    out = {"threads": threads, "matmul_size": matmul_size, "rounds": rounds,
           "parameters": coords, "step_lstm_forward_mflop": step_flops / 1e6,
           "lstm_forward_mflop": {str(n): lstm_flops(n, 2, hidden, layers) / 1e6
                                  for n in sizes}}
    for clock in CLOCKS:
        out[clock] = _rates(best[clock], matmul_size, sizes, out["lstm_forward_mflop"],
                            step_flops)
    return out


def _rates(best: dict, matmul_size: int, sizes, lstm_mflop: dict, step_flops: int) -> dict:
    """GFLOP/s, fractions of the matmul rate and step ratios from one clock's best seconds."""
    mm_flops = 2 * matmul_size**3
    rate = mm_flops / best["matmul"] / 1e9
    out = {"matmul_gflops_1thread": mm_flops / best["matmul_1thread"] / 1e9,
           "matmul_gflops": rate, "lstm": {}}
    for n in sizes:
        row = out["lstm"][str(n)] = {}
        for kind, factor in (("forward", 1), ("forward_backward", 3)):
            seconds = best[f"lstm_{kind}_{n}"]
            row[f"{kind}_ms"] = 1e3 * seconds
            row[f"{kind}_gflops"] = factor * lstm_mflop[str(n)] / 1e3 / seconds
            row[f"{kind}_fraction"] = row[f"{kind}_gflops"] / rate
    floor_ms = 1e3 * step_flops / (rate * 1e9)
    parts = {k.removeprefix("part_"): 1e3 * v for k, v in best.items() if k.startswith("part_")}
    kinds = sorted({k.rsplit("_l", 1)[0] for k in parts})
    out["parts_ms"] = {kind: sum(v for k, v in parts.items() if k.rsplit("_l", 1)[0] == kind)
                       for kind in kinds}
    parts_total = sum(parts.values())
    out["optim"] = {"adam_ms": 1e3 * best["adam_step"], "learned_ms": 1e3 * best["learned_step"],
                    "learned_kernel_ms": 1e3 * best["learned_kernel_step"],
                    "floor_ms": floor_ms, "parts_ms": parts_total,
                    "learned_over_adam": best["learned_step"] / best["adam_step"],
                    "learned_over_floor": 1e3 * best["learned_step"] / floor_ms,
                    "parts_over_floor": parts_total / floor_ms,
                    "learned_over_parts": 1e3 * best["learned_step"] / parts_total}
    return out


def print_floor(res: dict) -> None:
    """The lines ``bench --floor`` prints for ``bench_floor``'s result."""
    print(f"best of {res['rounds']} interleaved rounds, {res['threads']} threads; fp32 matmul "
          f"{res['matmul_size']}^3; LSTM FLOPs: gate matmuls, forward+backward = 3x forward")
    for clock in CLOCKS:
        r = res[clock]
        print(f"[{clock} time] matmul {r['matmul_gflops_1thread']:.1f} GFLOP/s on 1 thread, "
              f"{r['matmul_gflops']:.1f} on {res['threads']}")
        for n, row in r["lstm"].items():
            print(f"  LSTM on {int(n):,} coordinates ({res['lstm_forward_mflop'][n]:.0f} MFLOP "
                  f"forward): forward {row['forward_ms']:.1f} ms, {row['forward_gflops']:.1f} "
                  f"GFLOP/s ({100 * row['forward_fraction']:.0f}% of matmul); forward+backward "
                  f"{row['forward_backward_ms']:.1f} ms, {row['forward_backward_gflops']:.1f} "
                  f"GFLOP/s ({100 * row['forward_backward_fraction']:.0f}%)")
        o = r["optim"]
        print(f"  step on {res['parameters']:,} parameters: Adam {o['adam_ms']:.3f} ms, "
              f"LearnedOpt LSTM(update) {o['learned_ms']:.1f} ms = "
              f"{o['learned_over_adam']:.0f}x Adam = {o['learned_over_floor']:.1f}x the matmul "
              f"floor ({o['floor_ms']:.1f} ms for {res['step_lstm_forward_mflop']:.0f} MFLOP); "
              f"with nn.LSTM's kernel (fused=False) {o['learned_kernel_ms']:.1f} ms")
        print(f"  the forward's parts on {res['parameters']:,} coordinates, one kernel each: "
              + ", ".join(f"{k} {v:.1f}" for k, v in r["parts_ms"].items())
              + f" ms; together {o['parts_ms']:.1f} ms = {o['parts_over_floor']:.1f}x the "
              f"matmul floor; the step is {o['learned_over_parts']:.1f}x the parts")
