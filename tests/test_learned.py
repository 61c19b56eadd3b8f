import math

import pytest
import torch

from metateleport.baselines import GD
from metateleport.config import config_from_dict
from metateleport.inner import run
from metateleport.learned import LearnedOptimizer, flatten_coords, unflatten_coords
from metateleport.mlp import mlp_loss
from metateleport.preprocess import log_sign
from metateleport.tasks import MLPTaskFamily
from metateleport.unroll import MetaTrainer


def test_log_sign_values_and_continuity():
    x = torch.tensor([3.0, -2e-3, 0.0, math.exp(-10) * 0.5, -math.exp(-10)])
    f = log_sign(x, p=10.0)
    assert f.shape == (5, 2)
    torch.testing.assert_close(f[0], torch.tensor([math.log(3.0) / 10, 1.0]))
    torch.testing.assert_close(f[1], torch.tensor([math.log(2e-3) / 10, -1.0]))
    torch.testing.assert_close(f[2], torch.tensor([-1.0, 0.0]))
    torch.testing.assert_close(f[3], torch.tensor([-1.0, 0.5]))
    torch.testing.assert_close(f[4], torch.tensor([-1.0, -1.0]))  # both branches agree here
    with pytest.raises(ValueError, match="p must be > 0"):
        log_sign(x, p=0)


def test_flatten_roundtrip():
    mats = [torch.randn(3, 4, 5), torch.randn(3, 2, 4)]
    flat = flatten_coords(mats)
    assert flat.shape == (3, 28)
    for a, b in zip(unflatten_coords(flat, [m.shape for m in mats]), mats):
        assert torch.equal(a, b)


def small_cfg(variant, **train):
    base = {"batch_size": 2, "n_steps": 4, "unroll": 2, "trajectories": 4, "val_problems": 4,
            "val_every": 0}
    return config_from_dict({"model": {"variant": variant}, "train": {**base, **train}})


@pytest.mark.parametrize("variant", ["update_tele", "update", "lr_tele", "update_random_tele"])
def test_meta_gradients_finite_and_nonzero_for_every_parameter(variant):
    trainer = MetaTrainer(small_cfg(variant))
    before = {k: v.clone() for k, v in trainer.opt.state_dict().items()}
    stats = trainer.window()
    assert stats["skipped"] == 0 and math.isfinite(stats["meta_loss"])
    for name, param in trainer.opt.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
        assert not torch.equal(param.detach(), before[name]), name


def test_lr_tele_starts_at_lr_init_and_stays_bounded():
    opt = LearnedOptimizer("lr_tele", lr_max=1e-3, lr_init=3e-4)
    p = MLPTaskFamily().sample(3, 0)
    state = opt.init_state(p)
    torch.testing.assert_close(state["lr"], torch.full((3,), 3e-4))
    with torch.no_grad():
        opt.group_net.lr_head.bias.fill_(50.0)
    lr = opt.init_state(p)["lr"]
    assert (lr <= 1e-3).all() and (lr > 0.99e-3).all()
    with torch.no_grad():
        opt.group_net.lr_head.bias.fill_(-50.0)
    assert (opt.init_state(p)["lr"] > 0).all()


def test_fixed_tele_norm_is_applied():
    opt = LearnedOptimizer("update_tele", tele_norm=0.02)
    from metateleport.optimizers import StepContext

    p = MLPTaskFamily().sample(2, 0)
    ctx = StepContext(0, p)
    moved, _ = opt.teleport(p.weights, opt.init_state(p), ctx)
    torch.testing.assert_close(ctx.stats["tele_norm"], torch.full((2,), 0.02))
    l0, l1 = mlp_loss(p.weights, p.X, p.Y), mlp_loss(moved, p.X, p.Y)
    assert ((l1 - l0).abs() / l0).max() < 1e-5


@pytest.mark.parametrize("variant", ["update_tele", "update_random_tele"])
def test_teleports_stop_after_tele_steps(variant):
    from metateleport.optimizers import StepContext

    opt = LearnedOptimizer(variant, tele_steps=2)
    p = MLPTaskFamily().sample(2, 0)
    state = opt.init_state(p)
    moved, after = opt.teleport(p.weights, state, StepContext(1, p))
    assert not torch.equal(moved[0], p.weights[0])
    kept, same = opt.teleport(moved, after, StepContext(2, p))
    assert kept is moved and same is after


def test_random_teleport_ablation_moves_along_the_level_set_with_the_set_norm():
    from metateleport.optimizers import StepContext

    opt = LearnedOptimizer("update_random_tele", tele_norm=0.02).double()
    p = MLPTaskFamily(widths=[8, 8, 8], n_samples=6, dtype=torch.float64).sample(3, 0)
    torch.manual_seed(0)
    moved, _ = opt.teleport(p.weights, opt.init_state(p), StepContext(0, p))
    torch.manual_seed(0)
    again, _ = opt.teleport(p.weights, opt.init_state(p), StepContext(0, p))
    other, _ = opt.teleport(p.weights, opt.init_state(p), StepContext(0, p))
    l0, l1 = mlp_loss(p.weights, p.X, p.Y), mlp_loss(moved, p.X, p.Y)
    assert ((l1 - l0).abs() / l0).max() < 1e-10
    assert all(torch.equal(a, b) for a, b in zip(moved, again))  # seeded: repeatable
    assert not torch.allclose(moved[0], other[0])  # a fresh draw per step
    # W_2' = W_2 expm(-T), so ||W_2^-1 W_2' - I||_F = ||T||_F (1 + O(||T||)) per problem
    g_inv = torch.linalg.solve(p.weights[1], moved[1])
    torch.testing.assert_close((g_inv - torch.eye(8, dtype=torch.float64)).norm(dim=(1, 2)),
                               torch.full((3,), 0.02, dtype=torch.float64), rtol=0.03, atol=0)
    assert not any(n.startswith("group_net") for n, _ in opt.named_parameters())
    with pytest.raises(ValueError, match="needs a fixed tele_norm"):
        LearnedOptimizer("update_random_tele", tele_norm=None)


def test_random_teleport_ablation_in_the_diag_group_is_exact_off_the_batch():
    from metateleport.optimizers import StepContext

    opt = LearnedOptimizer("update_random_tele", tele_norm=0.5, tele_group="diag").double()
    assert opt.move.group == "diag"
    p = MLPTaskFamily(widths=[8, 8, 8], n_samples=6, dtype=torch.float64).sample(3, 0)
    torch.manual_seed(0)
    moved, _ = opt.teleport(p.weights, opt.init_state(p), StepContext(0, p))
    assert not torch.allclose(moved[0], p.weights[0])
    # a positive rescaling of hidden units: the loss on inputs it never saw is unchanged
    other = MLPTaskFamily(widths=[8, 8, 8], n_samples=6, dtype=torch.float64).sample(3, 1)
    l0, l1 = mlp_loss(p.weights, other.X, other.Y), mlp_loss(moved, other.X, other.Y)
    assert ((l1 - l0).abs() / l0).max() < 1e-10


@pytest.mark.parametrize("variant", ["update_tele", "update"])
def test_shipped_optimizer_runs_unchanged_on_other_sizes(variant):
    from metateleport.checkpoint import load_optimizer

    opt, meta = load_optimizer(f"checkpoints/{variant}.pt")
    assert meta["task"]["widths"] == [20, 20, 20]
    for widths in ([10, 10, 10], [40, 40, 40], [20, 20, 20, 20]):
        p = MLPTaskFamily(widths, n_samples=min(widths[0], 20)).sample(8, 0, "test")
        traj = run(opt, p, 60)
        assert [w.shape for w in traj.weights] == [w.shape for w in p.weights]
        assert torch.isfinite(traj.losses).all()
        # trained on 20 x 20 only, it still cuts the loss by > 1000x on every size
        assert (traj.losses[-1] < 1e-3 * traj.losses[0]).all(), widths


def test_quick_config_lstm_update_beats_untrained_and_gd():
    from metateleport.config import load_config

    cfg = load_config("configs/quick.yaml", ["model.variant=update"])
    trainer = MetaTrainer(cfg)
    family = trainer.family
    val = family.sample(32, 123, "val")
    N = cfg.train.n_steps
    untrained = trainer.validate(val).losses[N].median()
    while not trainer.done:
        trainer.window()
    trained = trainer.validate(val).losses[N].median()
    gd = run(GD(3e-4), val, N).losses[N].median()
    assert trained < untrained and trained < gd, (trained, untrained, gd)


def test_non_finite_window_is_skipped_not_applied():
    trainer = MetaTrainer(small_cfg("update_tele"))
    trainer.window()
    params = {k: v.clone() for k, v in trainer.opt.state_dict().items()}
    trainer.carry["weights"] = [w * float("nan") for w in trainer.carry["weights"]]
    stats = trainer.window()
    assert stats["skipped"] == 1 and trainer.skipped == 1
    assert all(torch.equal(v, params[k]) for k, v in trainer.opt.state_dict().items())
    assert trainer.carry is None  # the broken trajectories are replaced
    assert trainer.window()["skipped"] == 1
    assert not all(torch.equal(v, params[k]) for k, v in trainer.opt.state_dict().items())


@pytest.mark.parametrize("chunk", [None, 128])  # 128: four kernel calls, the last shorter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coordinate_lstm_equals_two_lstm_cells(dtype, chunk):
    from metateleport.learned import CoordinateLSTM

    torch.manual_seed(0)
    lstm = CoordinateLSTM(2, 20).to(dtype)
    lstm.chunk = chunk
    cells = [torch.nn.LSTMCell(2, 20).to(dtype), torch.nn.LSTMCell(20, 20).to(dtype)]
    with torch.no_grad():
        for k, cell in enumerate(cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(lstm.lstm, f"{name}_l{k}"))
    x = torch.randn(500, 2, dtype=dtype)
    state = lstm.init_state(500, x)
    ref = [torch.zeros(500, 20, dtype=dtype)] * 4
    outs, refs = [], []
    for _ in range(3):
        out, state = lstm(x, state)
        h1, c1 = cells[0](x, (ref[0], ref[1]))
        h2, c2 = cells[1](h1, (ref[2], ref[3]))
        ref = [h1, c1, h2, c2]
        outs.append(out)
        refs.append(h2)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(torch.stack(outs), torch.stack(refs), rtol=tol, atol=tol)
    torch.testing.assert_close(state[1][1], ref[3], rtol=tol, atol=tol)
    grads = torch.autograd.grad(torch.stack(outs).pow(2).sum(), list(lstm.parameters()))
    ref_grads = torch.autograd.grad(torch.stack(refs).pow(2).sum(),
                                    [p for c in cells for p in c.parameters()])
    # nn.LSTM's parameters: per layer weight_ih, weight_hh, bias_ih, bias_hh (same as the cells)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=10 * tol, atol=10 * tol)


def _fused_against_kernel(lstm, n, steps, device="cpu"):
    """Outputs and states of ``steps`` no-grad steps of ``lstm`` on ``n`` coordinates with
    nn.LSTM's kernel and with fused_inference, from the same random non-zero states."""
    from metateleport.networks import fused_inference

    torch.manual_seed(1)
    dtype = next(lstm.parameters()).dtype
    xs = [torch.randn(n, lstm.lstm.input_size, dtype=dtype, device=device)
          for _ in range(steps)]
    start = [torch.randn(lstm.num_layers, n, lstm.hidden_size, dtype=dtype, device=device)
             for _ in range(2)]
    runs = []
    for fused in (False, True):
        state, outs = start, []
        with torch.no_grad(), fused_inference(fused):
            for x in xs:
                out, state = lstm(x, state)
                outs.append(out)
        runs.append((torch.stack(outs), *state))
    return runs


@pytest.mark.parametrize("layers,chunk,n", [(2, None, 300), (2, 128, 500), (1, 64, 100),
                                            (3, 50, 130), (2, 128, 0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_inference_equals_the_lstm_kernel(dtype, layers, chunk, n):
    """The fused no-grad step (one sigmoid for all gates, tanh(z) = 2 sigmoid(2z) - 1, the cell
    updated in place) computes nn.LSTM's step to float rounding, in chunks or not, for any
    depth, the states too."""
    from metateleport.networks import CoordinateLSTM

    torch.manual_seed(0)
    lstm = CoordinateLSTM(3, 8, layers).to(dtype)
    lstm.chunk = chunk
    kernel, fused = _fused_against_kernel(lstm, n, 4)
    tol = 2e-6 if dtype == torch.float32 else 1e-13
    for a, b in zip(kernel, fused):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)


def test_fused_inference_leaves_autograd_steps_alone():
    from metateleport.networks import CoordinateLSTM, fused_inference

    torch.manual_seed(0)
    lstm = CoordinateLSTM(2, 8)
    x = torch.randn(40, 2)
    state = lstm.init_state(40, x)
    plain, _ = lstm(x, state)
    with fused_inference():
        graded, _ = lstm(x, state)
        with fused_inference(False), torch.no_grad():
            inner, _ = lstm(x, state)
        with torch.no_grad():
            fused, _ = lstm(x, state)
    assert graded.requires_grad and torch.equal(graded, plain)  # nn.LSTM's kernel, bit for bit
    assert torch.equal(inner, plain.detach())  # the inner context switched it off
    assert not torch.equal(fused, plain.detach())  # ... and on again after it
    torch.testing.assert_close(fused, plain.detach(), rtol=2e-6, atol=2e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fused_inference_on_cuda():
    from metateleport.networks import CoordinateLSTM

    lstm = CoordinateLSTM(2, 20).cuda()
    kernel, fused = _fused_against_kernel(lstm, 1000, 3, device="cuda")
    for a, b in zip(kernel, fused):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_cosine_meta_lr_schedule():
    trainer = MetaTrainer(small_cfg("update", trajectories=8, meta_lr=0.01))
    assert trainer.total_meta_steps == 8
    lrs = []
    while not trainer.done:
        lrs.append(trainer.window()["meta_lr"])
    assert lrs[0] == 0.01 and all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.001
    const = MetaTrainer(small_cfg("update", meta_lr_schedule="constant", meta_lr=0.01))
    assert [const.window()["meta_lr"] for _ in range(3)] == [0.01] * 3


def test_scale_free_inputs_do_not_see_the_loss_scale():
    from metateleport.inner import StepContext
    from metateleport.tasks import MLPTaskFamily

    torch.manual_seed(0)
    p = MLPTaskFamily(widths=(6, 6, 6, 4), n_samples=6, dtype=torch.float64).sample(2, 0)
    opt = LearnedOptimizer("update_tele", update_input="rms", tele_input="normalized",
                           tele_norm_over="network", tele_norm=None).double()
    state = opt.init_state(p)
    grads = [torch.randn_like(w) for w in p.weights]
    d1, _ = opt.update(p.weights, grads, state, StepContext(0, p))
    d2, _ = opt.update(p.weights, [1e6 * g for g in grads], state, StepContext(0, p))
    for a, b in zip(d1, d2):
        torch.testing.assert_close(a, b)
    # bias-free LeakyReLU nets are positively homogeneous: X, Y -> cX, cY scales the loss by
    # c^2 and every gradient alike, and leaves the normalized teleport unchanged
    c = 1e3
    scaled = type(p)(c * p.X, c * p.Y, p.weights, p.slope)
    m1, _ = opt.teleport([w.clone() for w in p.weights], state, StepContext(0, p))
    m2, _ = opt.teleport([w.clone() for w in scaled.weights], state, StepContext(0, scaled))
    for a, b in zip(m1, m2):
        torch.testing.assert_close(a, b)
    total = sum(float((w - v).detach().pow(2).sum()) for w, v in zip(m1, p.weights))
    assert total > 0
    norms = StepContext(0, p)
    opt.teleport([w.clone() for w in p.weights], state, norms)
    assert bool((norms.stats["tele_norm"] <= opt.group_net.max_tele_norm * (1 + 1e-9)).all())


def test_the_gradient_form_preconditions_the_gradient_within_its_tilt():
    """m1's gradient form moves every coordinate against its gradient, by a step whose ratio to
    the problem's common step exp(mean log-step) lies within exp(+-tilt); a zero gradient does
    not move; and m1's outputs set the steps (another LSTM, other steps)."""
    from metateleport.inner import StepContext
    from metateleport.learned import gradient_form
    from metateleport.tasks import MLPTaskFamily

    torch.manual_seed(0)
    out = 5 * torch.randn(3, 40, dtype=torch.float64)
    direction = torch.randn(3, 40, dtype=torch.float64)
    direction[:, :5] = 0
    step = gradient_form(out, direction, 0.1, tilt=0.5)
    assert bool((step[:, :5] == 0).all()) and bool((step[:, 5:] * direction[:, 5:] < 0).all())
    ratio = (step[:, 5:] / -direction[:, 5:]).log() - torch.log(torch.tensor(0.1)) \
        - out.mean(1, keepdim=True)
    assert 0.4 < float(ratio.abs().max()) <= 0.5 + 1e-6
    free = gradient_form(out, direction, 0.1, tilt=None)
    torch.testing.assert_close(free, -0.1 * out.exp() * direction)

    p = MLPTaskFamily(widths=(6, 6, 6, 4), n_samples=6, dtype=torch.float64).sample(2, 0)
    grads = [torch.randn_like(w) for w in p.weights]
    opt = LearnedOptimizer("update", update_input="rms", update_form="gradient",
                           update_tilt=1.0).double()
    delta, _ = opt.update(p.weights, grads, opt.init_state(p), StepContext(0, p))
    for d, g in zip(delta, grads):
        assert bool((d * g < 0).all())
    with torch.no_grad():
        opt.update_net.head.bias.add_(1.0)  # every log-step up by 1
    more, _ = opt.update(p.weights, grads, opt.init_state(p), StepContext(0, p))
    for a, b in zip(more, delta):
        torch.testing.assert_close(a, math.e * b)
    with pytest.raises(ValueError, match="input 'rms'"):
        LearnedOptimizer("update", update_form="gradient")


def test_the_tilt_per_layer_gives_every_layer_a_common_step_of_its_own():
    """With sizes, the tilt bounds each log-step around its own layer's mean, not the
    problem's: a layer whose log-steps are all raised by 6 moves exp(6) times as far while the
    others do not move differently (over the problem the tilt would squash that), and within
    a layer every step lies within exp(+-tilt) of the layer's common step."""
    from metateleport.inner import StepContext
    from metateleport.learned import gradient_form
    from metateleport.tasks import MLPTaskFamily

    torch.manual_seed(0)
    sizes = [12, 20, 8]
    out = torch.randn(2, 40, dtype=torch.float64)
    direction = torch.randn(2, 40, dtype=torch.float64)
    step = gradient_form(out, direction, 0.1, tilt=0.5, sizes=sizes)
    log_ratio = (step / -direction).log() - math.log(0.1)
    for part_log, part_out in zip(log_ratio.split(sizes, 1), out.split(sizes, 1)):
        dev = part_log - part_out.mean(1, keepdim=True)
        assert float(dev.abs().max()) <= 0.5 + 1e-9
    raised = out.clone()
    raised[:, 12:32] += 6.0
    moved = gradient_form(raised, direction, 0.1, tilt=0.5, sizes=sizes)
    torch.testing.assert_close(moved[:, 12:32], math.exp(6.0) * step[:, 12:32])
    torch.testing.assert_close(moved[:, :12], step[:, :12])
    over_problem = gradient_form(raised, direction, 0.1, tilt=0.5)
    # over the problem the mean moves by 3 and the tilt squashes the rest: at most exp(-1.5)
    assert float((over_problem[:, 12:32] / moved[:, 12:32]).abs().max()) < math.exp(-1.5)
    with pytest.raises(ValueError, match="sum to 39"):
        gradient_form(out, direction, 0.1, tilt=0.5, sizes=[12, 20, 7])

    # the batched path hands m1's rule each layer's size (a layer is one matrix)
    p = MLPTaskFamily(widths=(6, 5, 4), n_samples=5, dtype=torch.float64).sample(2, 0)
    grads = [torch.randn_like(w) for w in p.weights]
    opt = LearnedOptimizer("update", update_input="rms", update_form="gradient",
                           update_tilt=0.5, update_tilt_over="layer").double()
    seen = []
    shape = opt.rule.shape
    opt.rule.shape = lambda o, d, s=None: seen.append(s) or shape(o, d, s)
    opt.update(p.weights, grads, opt.init_state(p), StepContext(0, p))
    assert seen == [[30, 20]]
    with pytest.raises(ValueError, match="bounded per layer.*pass the layers' sizes"):
        shape(torch.zeros(1, 50), torch.zeros(1, 50))
    with pytest.raises(ValueError, match="tilt_over must be one of"):
        LearnedOptimizer("update", update_input="rms", update_form="gradient", update_tilt=1.0,
                         update_tilt_over="unit")


@pytest.mark.parametrize("tilt_over", ["problem", "layer"])
def test_the_first_layer_tilt_bounds_only_the_first_layer(tilt_over):
    """With tilt_first, the first layer's log-steps lie within +-tilt_first of their common
    log-step (the problem's or the layer's mean) while the later layers' keep the wider tilt,
    and the later layers' steps are those of the rule without tilt_first."""
    from metateleport.inner import StepContext
    from metateleport.tasks import MLPTaskFamily

    torch.manual_seed(1)
    sizes = [12, 20, 8]
    out = 4 * torch.randn(3, 40, dtype=torch.float64)
    direction = torch.randn(3, 40, dtype=torch.float64)
    opt = LearnedOptimizer("update", update_input="rms", update_form="gradient",
                           update_tilt=3.0, update_tilt_over=tilt_over,
                           update_tilt_first=0.5).double()
    plain = LearnedOptimizer("update", update_input="rms", update_form="gradient",
                             update_tilt=3.0, update_tilt_over=tilt_over).double()
    step = opt.rule.shape(out, direction, sizes)
    wide = plain.rule.shape(out, direction, sizes)
    torch.testing.assert_close(step[:, 12:], wide[:, 12:])
    assert not torch.allclose(step[:, :12], wide[:, :12])
    common = out.mean(1, keepdim=True) if tilt_over == "problem" else out[:, :12].mean(
        1, keepdim=True)
    dev = (step[:, :12] / -direction[:, :12]).log() - math.log(0.1) - common
    assert float(dev.abs().max()) <= 0.5 + 1e-9
    assert float(((wide[:, 12:] / -direction[:, 12:]).log() - math.log(0.1)).std()) > 1.0
    with pytest.raises(ValueError, match="pass the layers' sizes"):
        opt.rule.shape(out, direction)
    with pytest.raises(ValueError, match="do not fit"):
        opt.rule.shape(out, direction, [50])
    with pytest.raises(ValueError, match="tilt_first must be > 0 and needs a tilt"):
        LearnedOptimizer("update", update_input="rms", update_form="gradient",
                         update_tilt_first=0.5)

    # the batched path: the first layer is the first weight matrix
    p = MLPTaskFamily(widths=(6, 5, 4), n_samples=5, dtype=torch.float64).sample(2, 0)
    grads = [torch.randn_like(w) for w in p.weights]
    with torch.no_grad():
        opt.update_net.load_state_dict(plain.update_net.state_dict())
    a, _ = opt.update(p.weights, grads, opt.init_state(p), StepContext(0, p))
    b, _ = plain.update(p.weights, grads, plain.init_state(p), StepContext(0, p))
    torch.testing.assert_close(a[1], b[1])
