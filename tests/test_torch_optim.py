"""metateleport.optim.LearnedOpt: a trained optimizer in an ordinary PyTorch training loop."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from torch import nn

from metateleport.checkpoint import CheckpointError, load_optimizer
from metateleport.inner import run
from metateleport.learned import LearnedOptimizer
from metateleport.symmetry import RankError
from metateleport.tasks import MLPTaskFamily
from metateleport.torch_optim import LearnedTorchOptimizer as LearnedOpt

CKPT = Path(__file__).resolve().parents[1] / "checkpoints"


def mlp(widths, bias, slope=0.1, dtype=torch.float64) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(len(widths) - 1):
        layers.append(nn.Linear(widths[k], widths[k + 1], bias=bias))
        if k < len(widths) - 2:
            layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers).to(dtype)


def load_problem(model: nn.Sequential, weights: list[torch.Tensor]) -> None:
    """Copy the batched weights [A | b] (1, d_k, d_{k-1} (+1)) of problem 0 into the model."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, w in zip(linears, weights):
            lin.weight.copy_(w[0, :, :lin.in_features])
            if lin.bias is not None:
                lin.bias.copy_(w[0, :, lin.in_features])


def sq_loss(model, X, Y):
    return 0.5 * (model(X) - Y).pow(2).sum()


def torch_loop(model, opt, X, Y, steps, teleport=True):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = sq_loss(model, X, Y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        if teleport:
            opt.teleport(model, X, Y)
    losses.append(sq_loss(model, X, Y).item())
    return torch.tensor(losses, dtype=torch.float64)


# (checkpoint, steps at float32 rounding, bound at step 30): LSTM(update); the direct form's
# teleporting generalist (shipped until 2026-12-06); the mixed form's, whose m1 also steps
# along Adam's direction, which amplifies float32 rounding faster: the one shipped until a
# fourth session of 2026-12-07 (1600 trajectories; 5e-6 by step 4, 1.4e-5 by step 5) and the
# one shipped since, meta-trained twice as long (5e-6 by step 3, 1.4e-5 by step 4, 9e-5 by
# step 7, 0.02-0.04 by step 30), nn.LSTM's kernel alike in both
GENERAL = CKPT.parent / "studies" / "general"
FUSED_CASES = [(CKPT / "update.pt", 11, 0.05),
               (GENERAL / "update_tele_diag-noguard-long-bound3" / "s1.pt", 11, 0.05),
               (GENERAL / "update_tele_diag-noguard-long-bound3-mixed-tilt3-scale1-balanced_test"
                / "s1.pt", 4, 0.5),
               (CKPT / "general_update_tele.pt", 3, 0.5)]


@pytest.mark.parametrize("path, tight, late", FUSED_CASES,
                         ids=["update", "direct_generalist", "mixed_generalist_1600",
                              "general_update_tele"])
def test_fused_steps_are_as_accurate_as_the_kernel(path, tight, late):
    """fused=True (the default: networks.fused_inference) and fused=False (nn.LSTM's kernel),
    both in float32, against the float64 trajectory of the same checkpoint. Over the first
    ``tight`` steps both stay near float32 rounding (below 1e-5 relative) and the fused one is
    no farther from float64 than nn.LSTM's (within 3x); later the dynamics amplify rounding
    chaotically (either kernel ahead by chance), so there only a bound holds."""
    p = MLPTaskFamily().sample(1, 3, "test")
    runs = {}
    for fused, dtype in ((True, torch.float32), (False, torch.float32), (False, torch.float64)):
        learned, _ = load_optimizer(path)
        model = mlp([20, 20, 20], False, dtype=dtype)
        load_problem(model, [w.to(dtype) for w in p.weights])
        opt = LearnedOpt(model.parameters(), learned=learned.to(dtype), fused=fused)
        assert opt.fused is fused
        opt.start(model)  # general_update_tele.pt starts balanced (model.balance_first)
        runs[fused, dtype] = torch_loop(model, opt, p.X[0].T.to(dtype), p.Y[0].T.to(dtype), 30)
    exact = runs[False, torch.float64]

    def off(key, steps):
        return float(((runs[key][:steps] - exact[:steps]).abs() / exact[:steps].abs()).max())

    fused, kernel = (True, torch.float32), (False, torch.float32)
    assert off(fused, tight) <= 1e-5
    assert off(fused, tight) <= 3 * off(kernel, tight)
    assert off(fused, 31) <= late and off(kernel, 31) <= late
    assert float(exact[-1]) < 0.5 * float(exact[0])


# lookahead: one step agrees to 1e-16, but that run amplifies rounding chaotically (1e-2 by
# step 27 in float64, the batched path against itself at another batch size alike): 8 steps.
@pytest.mark.parametrize("name, steps", [("update", 30), ("paper_update_tele", 30),
                                         ("update_random_tele", 30), ("lr_tele", 30),
                                         ("imbalanced_update_balance", 30),
                                         ("paper_update_tele_look", 8)])
@pytest.mark.parametrize("bias", [False, True])
def test_same_trajectory_as_the_batched_path(name, steps, bias):
    learned, _ = load_optimizer(CKPT / f"{name}.pt")
    learned = learned.double()
    p = MLPTaskFamily(bias=bias, dtype=torch.float64).sample(1, 3, "test")
    torch.manual_seed(1)  # the random teleports draw from torch's generator in both paths
    ref = run(learned, p, steps).losses[:, 0]
    model = mlp([20, 20, 20], bias)
    load_problem(model, p.weights)
    opt = LearnedOpt(model.parameters(), learned=learned)
    torch.manual_seed(1)
    got = torch_loop(model, opt, p.X[0].T, p.Y[0].T, steps)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=0)
    assert float(ref[-1]) < 0.1 * float(ref[0])  # it did train


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_dict_resumes_exactly(dtype):
    learned, _ = load_optimizer(CKPT / "paper_update_tele.pt")  # float32 meta-parameters
    p = MLPTaskFamily(bias=True, dtype=dtype).sample(1, 5, "test")
    X, Y = p.X[0].T, p.Y[0].T

    def fresh():
        model = mlp([20, 20, 20], True, dtype=dtype)
        load_problem(model, p.weights)
        return model, LearnedOpt(model.parameters(), learned=learned)

    model, opt = fresh()
    torch_loop(model, opt, X, Y, 7)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    straight = torch_loop(model, opt, X, Y, 7)

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model2, opt2 = fresh()
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    resumed = torch_loop(model2, opt2, X, Y, 7)
    assert torch.equal(straight, resumed)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    # what was restored is the state: a fresh optimizer (zero LSTM states, step 0) differs
    model3, opt3 = fresh()
    model3.load_state_dict(saved["model"])
    assert not torch.equal(torch_loop(model3, opt3, X, Y, 7), straight)


class AnyShapes(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 4)
        self.conv = nn.Conv2d(4, 3, kernel_size=3, padding=1)
        self.head = nn.Linear(3 * 5 * 5, 2)

    def forward(self, idx):
        x = self.emb(idx).permute(0, 3, 1, 2)  # (n, 5, 5) indices -> (n, 4, 5, 5)
        return self.head(torch.tanh(self.conv(x)).flatten(1))


def test_any_parameter_shape_and_coordinatewise():
    torch.manual_seed(0)
    model = AnyShapes()
    idx, y = torch.randint(0, 7, (6, 5, 5)), torch.randn(6, 2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = LearnedOpt(model.parameters(), CKPT / "update.pt")
    opt.zero_grad()
    nn.functional.mse_loss(model(idx), y).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    learned = opt.learned
    for n, p in model.named_parameters():
        assert opt.state[p]["m1"][0].shape == (2, p.numel(), learned.update_net.lstm.hidden_size)
        # one batched LSTM call over all parameters gives each parameter its own update
        alone = nn.Parameter(before[n].clone())
        alone.grad = grads[n]
        LearnedOpt([alone], learned=learned).step()
        torch.testing.assert_close(p.detach(), alone.detach(), rtol=1e-6, atol=1e-7)
        assert not torch.equal(p.detach(), before[n])


def test_param_groups_zero_grad_and_scheduler():
    torch.manual_seed(0)
    a, b, frozen = (nn.Parameter(torch.randn(5, 3)) for _ in range(3))
    opt = LearnedOpt([{"params": [a]}, {"params": [b], "lr": 0.5}, {"params": [frozen],
                      "lr": 0.0}], CKPT / "update.pt")
    ref = LearnedOpt([nn.Parameter(b.detach().clone())], CKPT / "update.pt")
    b0, f0 = b.detach().clone(), frozen.detach().clone()
    for p in (a, b, frozen, *ref.param_groups[0]["params"]):
        p.grad = torch.ones_like(p)
    opt.step()
    ref.step()
    assert torch.equal(frozen, f0)
    torch.testing.assert_close(b - b0, 0.5 * (ref.param_groups[0]["params"][0] - b0))
    opt.zero_grad()
    assert all(p.grad is None for p in (a, b, frozen))
    a_before = a.detach().clone()
    opt.step()  # no gradients: nothing moves
    assert torch.equal(a, a_before)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    new = nn.Parameter(torch.zeros(2))
    opt.add_param_group({"params": [new]})
    assert opt.param_groups[-1]["lr"] == 1.0


def test_closure_is_evaluated():
    p = nn.Parameter(torch.ones(3))
    opt = LearnedOpt([p], CKPT / "update.pt")

    def closure():
        opt.zero_grad()
        loss = p.pow(2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(3.0)
    assert not torch.equal(p.detach(), torch.ones(3))


@pytest.mark.parametrize("kind, name", [("checkpoint", "paper_update_tele"),
                                        ("checkpoint", "update_random_tele"),
                                        ("balance", "update"), ("random", "update"),
                                        ("ascent", "update")])
def test_teleport_keeps_the_batch_loss_with_biases(kind, name):
    torch.manual_seed(0)
    model = mlp([6, 9, 7, 3], bias=True)
    for m in model:
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.bias.normal_()
    X, Y = torch.randn(7, 6, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    other = torch.randn(20, 6, dtype=torch.float64)
    opt = LearnedOpt(model.parameters(), CKPT / f"{name}.pt")
    opt.zero_grad()
    sq_loss(model, X, Y).backward()
    opt.step()
    before = [p.detach().clone() for p in model.parameters()]
    loss0, out0 = sq_loss(model, X, Y).item(), model(other).detach()
    stats = opt.teleport(model, X, Y, kind=kind, norm=0.5)
    assert sq_loss(model, X, Y).item() == pytest.approx(loss0, rel=1e-10)
    assert stats["output_change"] < 1e-10
    moved = [not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters())]
    assert any(moved)
    biases = [m.bias for m in model if isinstance(m, nn.Linear)]
    assert any(not torch.equal(b0, b.detach()) for b0, b in
               zip(before[1::2], biases)), "the hidden layers' biases move with their units"
    assert torch.equal(before[-1], biases[-1].detach()), "the output bias never moves"
    # off the batch the outputs move, except under the positive diagonal subgroup (balancing),
    # which LeakyReLU's positive homogeneity makes exact for every input
    assert torch.allclose(model(other), out0) == (kind == "balance")


def test_teleport_class_indices_and_float32():
    learned, _ = load_optimizer(CKPT / "paper_update_tele.pt")
    model = mlp([8, 12, 4], bias=True, dtype=torch.float32)
    X, labels = torch.rand(9, 8), torch.arange(9) % 4
    opt = LearnedOpt(model.parameters(), learned=learned)
    loss0 = sq_loss(model, X, nn.functional.one_hot(labels, 4).float()).item()
    stats = opt.teleport(model, X, labels)
    assert stats["tele_norm"] > 0
    loss1 = sq_loss(model, X, nn.functional.one_hot(labels, 4).float()).item()
    assert loss1 == pytest.approx(loss0, rel=1e-5)


def test_teleport_errors():
    model = mlp([6, 5, 3], bias=True)
    opt = LearnedOpt(model.parameters(), CKPT / "paper_update_tele.pt")
    X, Y = torch.randn(8, 6, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"n=8 samples.*n <= 7.*smaller batch.*inputs\[:7\]"):
        opt.teleport(model, X, Y)
    with pytest.raises(ValueError, match="pass targets"):
        opt.teleport(model, X[:5])
    with pytest.raises(ValueError, match=r"inputs must be \(n, 6\)"):
        opt.teleport(model, X[:5, :4], Y[:5])
    with pytest.raises(ValueError, match=r"targets must be \(n=5, 3\)"):
        opt.teleport(model, X[:5], Y[:4])
    bad = X[:5].clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        opt.teleport(model, bad, Y[:5])
    with pytest.raises(ValueError, match="kind must be"):
        opt.teleport(model, X[:5], Y[:5], kind="sideways")
    with pytest.raises(ValueError, match="ascent teleport reads"):
        opt.teleport(model, X[:5], kind="ascent")
    with pytest.raises(RankError, match="smaller batch"):
        opt.teleport(model, X[:1].expand(5, 6), Y[:5])  # five copies of one sample
    relu = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    with pytest.raises(ValueError, match="LeakyReLU"):
        LearnedOpt(relu.parameters(), CKPT / "update.pt").teleport(relu, X[:5], Y[:5])
    stranger = mlp([6, 5, 3], bias=True)
    with pytest.raises(ValueError, match="not all in this optimizer"):
        opt.teleport(stranger, X[:5], Y[:5])


def test_without_a_checkpoint_the_guarded_generalist_is_used(tmp_path, monkeypatch):
    import metateleport.torch_optim as torch_optim

    opt = LearnedOpt([nn.Parameter(torch.zeros(2))])
    assert torch_optim.DEFAULT_CHECKPOINT == CKPT / "general_update.pt"
    assert opt.metadata["variant"] == "update"
    assert opt.metadata["task"]["family"] == "distribution"
    assert opt.guard is not None, "the generalist ships with its loss guard"
    monkeypatch.setattr(torch_optim, "DEFAULT_CHECKPOINT", tmp_path / "gone.pt")
    with pytest.raises(FileNotFoundError, match="gone.pt.*pass checkpoint="):
        LearnedOpt([nn.Parameter(torch.zeros(2))])


def test_constructor_errors(tmp_path):
    p = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="not both"):
        LearnedOpt(p, CKPT / "update.pt", learned=LearnedOptimizer("update"))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        LearnedOpt(p, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="lr"):
        LearnedOpt(p, CKPT / "update.pt", lr=-1.0)
    emb = nn.Embedding(4, 2, sparse=True)
    opt = LearnedOpt(emb.parameters(), CKPT / "update.pt")
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_where_the_parameters_are():
    model = mlp([6, 5, 3], bias=True, dtype=torch.float32).cuda()
    opt = LearnedOpt(model.parameters(), CKPT / "paper_update_tele.pt")
    X, Y = torch.randn(5, 6, device="cuda"), torch.randn(5, 3, device="cuda")
    torch_loop(model, opt, X, Y, 3)
    assert next(opt.learned.parameters()).is_cuda
    assert all(s.is_cuda for p in model.parameters() for s in opt.state[p]["m1"])


def _matches_the_batched_path(learned, p, widths, steps=6):
    """Assert that ``learned`` gives the same losses on problem p (B = 1, with biases) by the
    batched path and through LearnedOpt on an nn.Module MLP holding p's weights (rtol 1e-8);
    returns that model and its optimizer, as the steps left them."""
    ref = run(learned, p, steps).losses[:, 0]
    model = mlp(widths, True)
    load_problem(model, p.weights)
    opt = LearnedOpt(model.parameters(), learned=learned)
    got = torch_loop(model, opt, p.X[0].T, p.Y[0].T, steps)
    torch.testing.assert_close(got, ref, rtol=1e-8, atol=0)
    return model, opt


def test_reset_variant_and_schedule_match_the_batched_path():
    # m1's state is reset after every teleport, and teleports follow steps 0, 2, 4, ...
    torch.manual_seed(0)
    learned = LearnedOptimizer("update_tele", m1_state_on_tele="reset", tele_every=2,
                               tele_norm=0.05).double()
    p = MLPTaskFamily(bias=True, dtype=torch.float64).sample(1, 2, "test")
    model, opt = _matches_the_batched_path(learned, p, [20, 20, 20])
    opt.zero_grad()
    sq_loss(model, p.X[0].T, p.Y[0].T).backward()
    opt.step()  # step 6: m1's state is fresh from the update
    assert all(s.abs().sum() > 0 for q in model.parameters() for s in opt.state[q]["m1"])
    opt.teleport(model, p.X[0].T, p.Y[0].T)  # after step 6 (t = 6): a teleport, then a reset
    assert all(s.abs().sum() == 0 for q in model.parameters() for s in opt.state[q]["m1"])


def test_diag_m2_matches_the_batched_path_on_any_batch_size():
    torch.manual_seed(0)
    learned = LearnedOptimizer("update_tele", tele_group="diag", tele_norm=None,
                               max_tele_norm=0.5, tele_scale=0.1, balance_input=True).double()
    p = MLPTaskFamily(bias=True, dtype=torch.float64).sample(1, 2, "test")
    model, opt = _matches_the_batched_path(learned, p, [20, 20, 20])
    X = torch.randn(60, 20, dtype=torch.float64)  # more samples than the gl move allows
    Y = torch.randn(60, 20, dtype=torch.float64)
    before = model(X)
    opt.teleport(model, X, Y)
    torch.testing.assert_close(model(X), before, rtol=1e-10, atol=1e-10)


def test_guard_leaves_parameters_with_a_non_finite_gradient_as_they_were():
    model = mlp([4, 5, 2], bias=False)
    for guard, untouched in ((2.0, True), (None, False)):
        opt = LearnedOpt(model.parameters(), CKPT / "update.pt", guard=guard)
        before = [p.detach().clone() for p in model.parameters()]
        for p in model.parameters():
            p.grad = torch.full_like(p, float("nan"))
        opt.step()
        same = all(torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
        assert same == untouched
        if guard is not None:
            assert opt.state["learned"]["guard_refused"] == 1
        with torch.no_grad():
            for p, b in zip(model.parameters(), before):
                p.copy_(b)


def test_guard_refuses_a_teleport_that_does_not_keep_the_batch_outputs(monkeypatch):
    import metateleport.torch_optim as torch_optim

    torch.manual_seed(0)
    X = torch.randn(5, 6)
    for guard, kept in ((2.0, True), (None, False)):
        model = mlp([6, 7, 3], bias=True).float()
        opt = LearnedOpt(model.parameters(), CKPT / "update.pt", guard=guard)
        before = [p.detach().clone() for p in model.parameters()]
        good = opt.teleport(model, X, kind="random", norm=0.01, group="diag")
        assert good["output_change"] < 1e-5 and "refused" not in good
        moved = [p.detach().clone() for p in model.parameters()]
        assert not all(torch.equal(a, b) for a, b in zip(before, moved))
        # a move that loses the function on its own batch (here: doubled weights)
        def doubled(self, *args, real=torch_optim.LearnedTorchOptimizer._move):
            return [2 * w for w in real(self, *args)[0]], {}

        monkeypatch.setattr(torch_optim.LearnedTorchOptimizer, "_move", doubled)
        bad = opt.teleport(model, X, kind="random", norm=0.01, group="diag")
        monkeypatch.undo()
        assert bad["output_change"] > torch_optim.TELE_TOLERANCE
        same = all(torch.equal(a, p.detach()) for a, p in zip(moved, model.parameters()))
        assert same == kept and bad.get("refused", False) == kept
        assert opt.state["learned"].get("tele_refused", 0) == int(kept)


def test_guard_with_a_closure_never_lets_the_loss_pass_its_bound():
    torch.manual_seed(0)
    model = mlp([6, 9, 3], bias=True)
    X, Y = torch.randn(6, 6, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    opt = LearnedOpt(model.parameters(), CKPT / "update.pt", lr=300.0, guard=1.5)

    def closure():
        opt.zero_grad()
        loss = sq_loss(model, X, Y)
        loss.backward()
        return loss

    losses = [closure().item()]
    for _ in range(15):
        opt.step(closure)
        losses.append(sq_loss(model, X, Y).item())
    assert opt.state["learned"]["guard_refused"] > 0, "300x the learned step must be refused"
    best = [min(losses[:i + 1]) for i in range(len(losses))]
    assert all(loss <= 1.5 * b for loss, b in zip(losses[1:], best[:-1]))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("options", [
    {"update_input": "rms"},
    {"tele_input": "normalized", "tele_norm_over": "network", "tele_norm": None},
    {"update_input": "rms", "lookahead_input": True, "tele_norm_over": "network"},
    {"update_input": "rms", "update_form": "gradient", "update_tilt": 1.0},
    {"update_input": "rms", "update_form": "gradient", "update_tilt": 0.5,
     "update_tilt_over": "layer"},
    {"update_input": "rms", "update_form": "gradient", "update_tilt": 3.0,
     "update_tilt_over": "layer", "update_tilt_first": 0.5},
    {"update_input": "rms", "update_form": "gradient", "lookahead_input": True},
])
def test_scale_free_options_match_the_batched_path(options):
    torch.manual_seed(0)
    learned = LearnedOptimizer("update_tele", **options).double()
    p = MLPTaskFamily(widths=(8, 7, 6, 5), n_samples=6, bias=True,
                      dtype=torch.float64).sample(1, 2, "test")
    _matches_the_batched_path(learned, p, [8, 7, 6, 5])


def test_layer_sizes_pair_each_weight_with_its_bias():
    """m1's tilt per layer in the torch face: a Linear's (or Conv's) weight and the bias after
    it are one layer, as the batched path's [A | b]; a bias-free layer, or a vector that does
    not match the parameter before it, is a layer of its own."""
    from metateleport.torch_optim import _layer_sizes

    model = nn.Sequential(nn.Linear(5, 4), nn.LeakyReLU(), nn.Linear(4, 3, bias=False),
                          nn.Linear(3, 3), nn.Conv1d(3, 2, 2))
    extra = [torch.zeros(2), torch.zeros(2)]  # a second vector after a layer's bias: its own
    params = list(model.parameters())
    assert _layer_sizes(params) == [24, 12, 12, 14]
    assert _layer_sizes(params + extra) == [24, 12, 12, 14, 2, 2]
    assert _layer_sizes([torch.zeros(3), torch.zeros(3, 2)]) == [3, 6]
