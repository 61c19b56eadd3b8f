"""m1's moment inputs (learned_update, model.update_moments): free of every coordinate's scale,
carried exactly through a diag teleport, restarted after a gl one, the same through the
torch.optim face, and refused where they cannot follow the moves."""

import pytest
import torch

from metateleport.config import ConfigError, config_from_dict
from metateleport.inner import StepContext, inner_step, run
from metateleport.learned import LearnedOptimizer, flatten_coords
from metateleport.learned_update import init_moments, moment_inputs, transport_moments
from metateleport.mlp import mlp_loss_and_grad
from metateleport.tasks import MLPTaskFamily


def _inputs_over(grads):
    moments = init_moments(grads[0])
    for g in grads:
        inputs, moments = moment_inputs(g, moments)
    return inputs, moments


def test_inputs_are_free_of_each_coordinate_scale_and_bounded():
    torch.manual_seed(0)
    grads = [torch.randn(3, 50, dtype=torch.float64) for _ in range(7)]
    scale = torch.exp(4 * torch.randn(3, 50, dtype=torch.float64))  # 1e-5 .. 1e5 per coordinate
    ref, _ = _inputs_over(grads)
    scaled, _ = _inputs_over([g * scale for g in grads])
    torch.testing.assert_close(scaled, ref, rtol=1e-10, atol=1e-12)
    assert ref.abs().max() <= 1 / (1 - 0.999) ** 0.5
    # the first step reads the gradient's sign; a coordinate never moved by a gradient reads 0
    first, _ = _inputs_over([grads[0]])
    torch.testing.assert_close(first[..., 0], grads[0].sign())
    zero = grads[0].clone()
    zero[:, 0] = 0
    assert (_inputs_over([zero])[0][:, 0] == 0).all()


def test_transported_moments_read_as_if_the_history_had_been_in_the_new_coordinates():
    torch.manual_seed(1)
    grads = [torch.randn(2, 30, dtype=torch.float64) for _ in range(5)]
    ratio = torch.exp(torch.randn(2, 30, dtype=torch.float64))
    _, moments = _inputs_over(grads[:-1])
    moved = transport_moments(moments, ratio)
    # after W -> r W every gradient reads g / r
    got, _ = moment_inputs(grads[-1] / ratio, moved)
    want, _ = _inputs_over([g / ratio for g in grads])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # a ratio that is no finite positive number (a weight that was exactly 0) keeps its moments
    bad = ratio.clone()
    bad[0, 0] = float("nan")
    kept = transport_moments(moments, bad)
    assert kept["v"][0, 0] == moments["v"][0, 0]


def _problems(bias=True, seed=0):
    torch.manual_seed(seed)
    return MLPTaskFamily(widths=(6, 5, 4, 3), n_samples=5, bias=bias,
                         dtype=torch.float64).sample(2, seed, "test")


@pytest.mark.parametrize("variant,options,carried", [
    ("update_balance", {}, True),
    ("update_tele", {"tele_group": "diag", "tele_norm": None, "max_tele_norm": 0.5,
                     "tele_scale": 0.3}, True),
    ("update_random_tele", {"tele_norm": 0.3}, False),  # gl: the moments restart
])
def test_a_teleport_carries_the_moments_with_the_coordinates(variant, options, carried):
    """After the step's teleport, the moment inputs m1 reads from the gradient at the moved
    point equal those it would read at the point before the move (a diag move leaves the
    function unchanged and divides each gradient coordinate by its weight's factor)."""
    p = _problems()
    opt = LearnedOptimizer(variant, update_moments=True, update_input="rms",
                           **options).double()
    weights, state = [w.clone() for w in p.weights], opt.init_state(p)
    for t in range(3):
        _, weights, state = inner_step(opt, weights, state, StepContext(t, p))
    loss_and_grad = mlp_loss_and_grad
    _, grads = loss_and_grad(weights, p.X, p.Y, p.slope)
    deltas, updated = opt.update(weights, grads, state, StepContext(3, p))
    stepped = [w + d for w, d in zip(weights, deltas)]
    moved, after = opt.teleport(stepped, updated, StepContext(3, p))
    assert not all(torch.equal(a, b) for a, b in zip(moved, stepped)), "no move was made"
    g_before = flatten_coords(loss_and_grad(stepped, p.X, p.Y, p.slope)[1])
    g_after = flatten_coords(loss_and_grad(moved, p.X, p.Y, p.slope)[1])
    read_before, _ = moment_inputs(g_before, updated["m1_moments"])
    read_after, _ = moment_inputs(g_after, after["m1_moments"])
    if carried:
        torch.testing.assert_close(read_after, read_before, rtol=1e-7, atol=1e-9)
    else:
        assert int(after["m1_moments"]["count"]) == 0
        assert (after["m1_moments"]["v"] == 0).all()


def test_moments_change_the_trajectory_and_stay_finite():
    p = _problems(seed=3)
    torch.manual_seed(0)
    plain = LearnedOptimizer("update", update_input="rms").double()
    torch.manual_seed(0)
    with_moments = LearnedOptimizer("update", update_input="rms", update_moments=True).double()
    assert with_moments.update_net.n_extra == 2 and plain.update_net.n_extra == 0
    a, b = run(plain, p, 10).losses, run(with_moments, p, 10).losses
    assert torch.isfinite(b).all() and not torch.equal(a, b)


@pytest.mark.parametrize("options", [
    {"variant": "update", "update_input": "rms"},
    {"variant": "update_tele", "tele_group": "diag", "tele_norm": None,
     "max_tele_norm": 0.5, "tele_scale": 0.3, "update_input": "rms"},
    {"variant": "update_tele", "tele_group": "diag", "tele_norm": None, "max_tele_norm": 0.5,
     "update_input": "rms", "update_form": "gradient", "update_tilt": 3.0,
     "m1_state_on_tele": "reset"},
    {"variant": "update_tele", "tele_group": "diag", "tele_norm": None, "max_tele_norm": 0.5,
     "update_input": "rms", "update_form": "adam", "update_tilt": 1.0},
    {"variant": "update_tele", "tele_group": "diag", "tele_norm": None, "max_tele_norm": 0.5,
     "update_input": "rms", "update_form": "mixed", "update_tilt": 3.0},
    {"variant": "update_tele", "tele_group": "diag", "tele_norm": None, "max_tele_norm": 0.5,
     "update_input": "rms", "update_form": "mixed", "update_tilt": 0.5,
     "update_tilt_over": "layer"},
])
def test_the_torch_face_matches_the_batched_path(options):
    from tests.test_torch_optim import _matches_the_batched_path

    torch.manual_seed(0)
    learned = LearnedOptimizer(update_moments=True, **options).double()
    p = MLPTaskFamily(widths=(8, 7, 6, 5), n_samples=6, bias=True,
                      dtype=torch.float64).sample(1, 2, "test")
    model, opt = _matches_the_batched_path(learned, p, [8, 7, 6, 5])
    # the optimizer's state round-trips: a copy resumes with the same moments
    state = opt.state_dict()
    assert any("m1_moments" in s for s in state["state"].values())


@pytest.mark.parametrize("model,match", [
    ({"update_moments": True, "variant": "lr_tele"}, r"model\.update_moments: .*lr_tele"),
    ({"update_moments": True, "lookahead_input": True},
     r"model\.update_moments: .*lookahead_input: True"),
    ({"update_moments": True}, r"model\.update_moments: .*tele_group: gl"),
    ({"update_moments": True, "variant": "update_random_tele", "tele_norm": 0.1},
     r"model\.update_moments: .*tele_group: gl"),
    ({"update_moments": "yes"}, r"model\.update_moments"),
    ({"update_form": "adam", "variant": "update"}, r"model\.update_form: adam .*update_moments"),
    ({"update_form": "mixed", "variant": "update", "update_input": "rms"},
     r"model\.update_form: mixed .*update_moments"),
    ({"update_form": "mixed", "variant": "update", "update_moments": True},
     r"model\.update_form: mixed .*update_input: rms"),
    ({"update_tilt": 1.0, "update_moments": True, "variant": "update"},
     r"model\.update_tilt: 1\.0 bounds .*update_form is direct"),
])
def test_config_errors_name_the_key(model, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"model": model})


def test_the_constructor_refuses_what_the_config_refuses():
    with pytest.raises(ValueError, match="update_moments"):
        LearnedOptimizer("lr_tele", update_moments=True)
    assert config_from_dict({"model": {"update_moments": True, "variant": "update"}})


def test_the_adam_form_moves_every_coordinate_against_adams_direction_within_the_tilt():
    p = _problems(seed=5)
    tilt = 0.5
    opt = LearnedOptimizer("update", update_input="rms", update_moments=True,
                           update_form="adam", update_tilt=tilt, update_scale=0.1).double()
    state = opt.init_state(p)
    for t in range(3):
        _, grads = mlp_loss_and_grad(p.weights, p.X, p.Y, p.slope)
        direction, _ = moment_inputs(flatten_coords(grads), state["m1_moments"])
        deltas, state = opt.update(p.weights, grads, state, StepContext(t, p))
        delta, d = flatten_coords(deltas), direction[..., 1]
        moving = d != 0
        assert (torch.sign(delta[moving]) == -torch.sign(d[moving])).all()
        assert (delta[~moving] == 0).all()
        log_step = torch.log(-delta[moving] / d[moving] / 0.1).reshape(p.batch_size, -1)
        spread = log_step - log_step.mean(dim=1, keepdim=True)
        assert spread.abs().max() <= 2 * tilt + 1e-9  # each within tilt of the mean log-step
    with pytest.raises(ValueError, match="moments"):
        LearnedOptimizer("update", update_form="adam")


def test_a_parameter_that_gets_its_first_gradient_late_has_its_own_step_count():
    """Through LearnedTorchOptimizer, a parameter without a gradient for two steps starts its
    moments then, with its own bias correction (its count), not the other parameters'."""
    from torch import nn

    from metateleport.torch_optim import LearnedTorchOptimizer

    torch.manual_seed(0)
    learned = LearnedOptimizer("update", update_input="rms", update_moments=True).double()
    a, b = (nn.Parameter(torch.randn(5, dtype=torch.float64)) for _ in range(2))
    opt = LearnedTorchOptimizer([a, b], learned=learned, guard=None)
    for step in range(4):
        opt.zero_grad()
        loss = (a ** 2).sum() + ((b ** 2).sum() if step >= 2 else 0)
        loss.backward()
        opt.step()
    assert int(opt.state[a]["m1_moments"]["count"]) == 4
    assert int(opt.state[b]["m1_moments"]["count"]) == 2


@pytest.mark.parametrize("kept", [0, 1])
def test_the_mixed_form_is_the_gradient_form_plus_the_adam_form(kept):
    """m1 in the mixed form with one of its two log-step outputs pushed to exp(-80) takes the
    steps of the single form whose output is the other one (0: the gradient over its RMS,
    1: Adam's direction), the same LSTM under it: each output moves along its own direction,
    and the two updates add."""
    p = _problems(seed=7)
    single = ("gradient", "adam")[kept]
    torch.manual_seed(0)
    mixed = LearnedOptimizer("update", update_input="rms", update_moments=True,
                             update_form="mixed", update_tilt=3.0).double()
    one = LearnedOptimizer("update", update_input="rms", update_moments=True,
                           update_form=single, update_tilt=3.0).double()
    assert mixed.update_net.head.weight.shape[0] == 2 and one.update_net.head.weight.shape[0] == 1
    with torch.no_grad():
        one.update_net.lstm.load_state_dict(mixed.update_net.lstm.state_dict())
        one.update_net.head.weight.copy_(mixed.update_net.head.weight[kept:kept + 1])
        one.update_net.head.bias.copy_(mixed.update_net.head.bias[kept:kept + 1])
        mixed.update_net.head.bias[1 - kept] = -80.0
    a, b = run(mixed, p, 6), run(one, p, 6)
    torch.testing.assert_close(a.losses, b.losses, rtol=1e-9, atol=0)
    # with both outputs alive the steps are neither single form's
    with torch.no_grad():
        mixed.update_net.head.bias[1 - kept] = 0.0
    assert not torch.allclose(run(mixed, p, 6).losses, b.losses)
    with pytest.raises(ValueError, match=r"update form must be one of .*'mixed'.*got 'mix'"):
        LearnedOptimizer("update", update_input="rms", update_moments=True, update_form="mix")
    with pytest.raises(ValueError, match="n_out=2"):
        from metateleport.learned_update import LearnedUpdate
        LearnedUpdate(one.update_net, input="rms", form="mixed", moments=True)
