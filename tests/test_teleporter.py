"""metateleport.Teleporter: teleporting an nn.Module in place, and carrying a torch.optim
optimizer's state through the move."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metateleport import Teleporter
from metateleport.modules import inspect_module, module_weights, write_weights
from metateleport.objectives import Sharpness
from metateleport.symmetry import apply_group

F64 = torch.float64


def mlp(widths, bias=True, dtype=F64, seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for k in range(len(widths) - 1):
        layers += [nn.Linear(widths[k], widths[k + 1], bias=bias), nn.LeakyReLU(0.1)]
    model = nn.Sequential(*layers[:-1]).to(dtype)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.normal_(0, 0.5)
    return model


def data(n, d_in=6, d_out=3, seed=1, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d_in, generator=gen, dtype=dtype),
            torch.randn(n, d_out, generator=gen, dtype=dtype))


def sq_loss(model, X, Y):
    return 0.5 * (model(X) - Y).pow(2).sum()


SMALL_SHARPNESS = Sharpness(radii=(0.1, 0.3), n_directions=8)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("objective", ["grad_norm", SMALL_SHARPNESS, "curvature"])
@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_diag_teleport_keeps_the_function_and_moves_the_objective(objective, direction, bias):
    model = mlp([6, 8, 5, 3], bias)
    X, Y = data(30)  # any batch size: diag needs no pseudo-inverse
    other = torch.randn(100, 6, dtype=F64)
    with torch.no_grad():
        out0 = model(other).clone()
    tele = Teleporter(objective, group="diag", steps=4, step_size=0.2, direction=direction)
    report = tele(model, X, Y)
    with torch.no_grad():
        assert float((model(other) - out0).abs().max() / out0.abs().max()) < 1e-13
    assert report.loss_after == pytest.approx(report.loss_before, rel=1e-13)
    assert report.output_change < 1e-13
    moved = report.objective_after - report.objective_before
    assert moved > 0 if direction == "maximize" else moved < 0
    assert report.steps == 4 and report.group == "diag"
    # normalized steps: step_size per layer and step
    assert all(0 < n <= 4 * 0.2 + 1e-12 for n in report.layer_norms)
    assert report.group_norm == pytest.approx(sum(n * n for n in report.layer_norms) ** 0.5)


@pytest.mark.parametrize("objective", ["grad_norm", SMALL_SHARPNESS, "curvature"])
def test_gl_teleport_keeps_the_batch_loss_and_moves_other_outputs(objective):
    model = mlp([6, 8, 5, 3])
    X, Y = data(6)
    other = torch.randn(100, 6, dtype=F64)
    with torch.no_grad():
        out0 = model(other).clone()
    report = Teleporter(objective, group="gl", steps=3, step_size=0.1)(model, X, Y)
    assert report.loss_after == pytest.approx(report.loss_before, rel=1e-10)
    assert report.output_change < 1e-10
    assert report.objective_after > report.objective_before
    with torch.no_grad():
        assert float((model(other) - out0).abs().max() / out0.abs().max()) > 1e-3
    assert [p.shape for p in report.params] == [(1, 8, 8), (1, 5, 5)]


def test_report_matches_the_written_model():
    model = mlp([6, 8, 5, 3])
    X, labels = data(12)[0], torch.arange(12) % 3  # class indices become one-hot rows
    report = Teleporter("grad_norm", steps=5, step_size=0.3, max_norm=0.5)(model, X, labels)
    model.zero_grad()
    sq_loss(model, X, nn.functional.one_hot(labels, 3).to(F64)).backward()
    grad_norm = sum(float(p.grad.pow(2).sum()) for p in model.parameters())
    assert report.objective_after == pytest.approx(grad_norm, rel=1e-12)
    assert max(report.layer_norms) <= 0.5 + 1e-12
    assert set(report.as_dict()) == {
        "objective", "group", "direction", "objective_before", "objective_after",
        "loss_before", "loss_after", "group_norm", "layer_norms", "steps", "output_change",
        "optimizer_state"}
    # steps=0 is the identity
    before = [p.detach().clone() for p in model.parameters()]
    none = Teleporter("grad_norm", steps=0)(model, X, labels)
    assert none.group_norm == 0 and none.objective_after == none.objective_before
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_float32_model_and_curvature_without_targets():
    model = mlp([6, 8, 3], dtype=torch.float32)
    X, Y = data(20, dtype=torch.float32)
    loss0 = float(sq_loss(model, X, Y).detach())
    report = Teleporter("curvature", steps=3, step_size=0.2)(model, X)
    assert report.loss_before is None and report.loss_after is None
    assert model[0].weight.dtype == torch.float32
    assert float(sq_loss(model, X, Y).detach()) == pytest.approx(loss0, rel=1e-5)


OPTIMIZERS = {
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.02, momentum=0.9, nesterov=True),
    "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=0.05),
    "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=0.01, centered=True),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
}


def set_params(model, weights):
    write_weights(inspect_module(model, allow_bias=True), weights)


def train(model, opt, batches):
    """One optimizer step per batch; returns the iterates [A | b] the gradients were taken at."""
    spec = inspect_module(model, allow_bias=True)
    seen = []
    for X, Y in batches:
        seen.append(module_weights(spec))
        opt.zero_grad()
        sq_loss(model, X, Y).backward()
        opt.step()
    return seen


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_transformed_state_steps_as_if_the_gradient_history_were_at_the_teleported_point(name):
    make = OPTIMIZERS[name]
    widths = [6, 8, 5, 3]
    batches = [data(10, seed=s) for s in range(7)]
    model = mlp(widths)
    opt = make(model.parameters())
    history = train(model, opt, batches[:6])
    X_t, Y_t = data(16, seed=99)
    tele = Teleporter("grad_norm", group="diag", steps=3, step_size=0.4)
    report = tele(model, X_t, Y_t, optimizer=opt)
    assert report.optimizer_state == "transform" and report.group_norm > 0.5
    teleported = module_weights(inspect_module(model, allow_bias=True))
    train(model, opt, batches[6:])

    # the replay: a fresh optimizer fed the gradients at the teleported images of the iterates
    replay = mlp(widths, seed=5)
    opt2 = make(replay.parameters())
    for W, (X, Y) in zip(history, batches[:6]):
        set_params(replay, apply_group(W, None, list(report.params), "diag"))
        train(replay, opt2, [(X, Y)])
    set_params(replay, teleported)
    train(replay, opt2, batches[6:])
    for p, q in zip(model.parameters(), replay.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
        for key, value in opt.state[p].items():
            torch.testing.assert_close(value, opt2.state[q][key], rtol=1e-11, atol=1e-15)

    # without the transform the next step is another one
    model = mlp(widths)
    opt = make(model.parameters())
    train(model, opt, batches[:6])
    Teleporter("grad_norm", group="diag", steps=3, step_size=0.4, optimizer_state="keep")(
        model, X_t, Y_t, optimizer=opt)
    train(model, opt, batches[6:])
    gap = max(float((p - q).abs().max()) for p, q in zip(model.parameters(),
                                                          replay.parameters()))
    assert gap > 1e-4


def test_reset_and_keep():
    model = mlp([6, 8, 3])
    X, Y = data(7)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    train(model, opt, [(X, Y)] * 3)
    kept = {k: v.clone() for k, v in opt.state[model[0].weight].items()}
    report = Teleporter(group="gl", steps=2, optimizer_state="keep")(model, X, Y, opt)
    assert report.optimizer_state == "keep"
    assert all(torch.equal(v, opt.state[model[0].weight][k]) for k, v in kept.items())
    Teleporter(group="gl", steps=2, optimizer_state="reset")(model, X, Y, opt)
    assert all(len(opt.state[p]) == 0 for p in model.parameters())
    train(model, opt, [(X, Y)])  # a fresh start
    assert float(opt.state[model[0].weight]["step"]) == 1


def test_refusals_leave_the_model_as_it_was():
    model = mlp([6, 8, 3])
    X, Y = data(7)
    before = [p.detach().clone() for p in model.parameters()]
    refused = [
        (torch.optim.Adam(model.parameters(), weight_decay=0.1), "diag", "weight_decay"),
        (torch.optim.Adagrad(model.parameters(), initial_accumulator_value=0.1), "diag",
         "initial_accumulator_value"),
        (torch.optim.RMSprop(model.parameters(), momentum=0.9), "diag", "momentum"),
        (torch.optim.Adamax(model.parameters()), "diag", "knows how the state"),
        (torch.optim.SGD(model.parameters(), lr=0.1), "gl", "exact only for the diag group"),
        (torch.optim.SGD(mlp([6, 8, 3]).parameters(), lr=0.1), "diag", "not all in"),
    ]
    for opt, group, match in refused:
        with pytest.raises(ValueError, match=match):
            Teleporter(group=group, steps=2)(model, X, Y, opt)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_errors():
    model = mlp([6, 8, 3])
    X, Y = data(8)
    for kwargs, match in [({"objective": "flatness"}, "objective must be one of"),
                          ({"group": "so"}, "group must be one of"),
                          ({"direction": "up"}, "direction must be one of"),
                          ({"steps": -1}, "steps must be"),
                          ({"step_size": 0.0}, "step_size must be"),
                          ({"max_norm": 0.0}, "max_norm"),
                          ({"optimizer_state": "copy"}, "optimizer_state must be one of")]:
        with pytest.raises(ValueError, match=match):
            Teleporter(**kwargs)
    relu = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    with pytest.raises(ValueError, match="LeakyReLU"):
        Teleporter()(relu, X, Y)
    with pytest.raises(ValueError, match=r"inputs must be \(n, 6\)"):
        Teleporter()(model, X[:, :4], Y)
    with pytest.raises(ValueError, match=r"targets must be \(n=8, 3\)"):
        Teleporter()(model, X, Y[:5])
    bad = X.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Teleporter()(model, bad, Y)
    with pytest.raises(ValueError, match="grad_norm.*pass targets"):
        Teleporter()(model, X)
    with pytest.raises(ValueError, match=r"n=8 samples.*n <= 7"):
        Teleporter(group="gl")(model, X, Y)
    with torch.no_grad():
        model[0].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="layer '0' holds NaN or inf"):
        Teleporter()(model, X, Y)
