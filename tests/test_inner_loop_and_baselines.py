import torch

from metateleport.baselines import GD, Adam
from metateleport.inner import StepContext, detach_state, inner_step, run
from metateleport.mlp import mlp_loss
from metateleport.tasks import MLPTaskFamily


def test_gd_run_matches_a_hand_loop():
    p = MLPTaskFamily(dtype=torch.float64).sample(3, 0)
    traj = run(GD(3e-4), p, 5)
    w = [x.clone().requires_grad_() for x in p.weights]
    for t in range(5):
        loss = mlp_loss(w, p.X, p.Y)
        torch.testing.assert_close(loss.detach(), traj.losses[t])
        grads = torch.autograd.grad(loss.sum(), w)
        w = [(x - 3e-4 * g).detach().requires_grad_() for x, g in zip(w, grads)]
    torch.testing.assert_close(mlp_loss(w, p.X, p.Y).detach(), traj.losses[5])
    assert traj.losses.shape == (6, 3) and traj.seconds.shape == (6,)


def test_adam_matches_torch_optim_adam():
    p = MLPTaskFamily(dtype=torch.float64).sample(1, 0)
    traj = run(Adam(lr=1e-2), p, 10)
    w = [x.clone().requires_grad_() for x in p.weights]
    opt = torch.optim.Adam(w, lr=1e-2)
    for t in range(10):
        opt.zero_grad()
        loss = mlp_loss(w, p.X, p.Y).sum()
        torch.testing.assert_close(loss.detach(), traj.losses[t, 0])
        loss.backward()
        opt.step()
    for a, b in zip(traj.weights, w):
        torch.testing.assert_close(a, b.detach())


def test_inner_step_keeps_graph_and_detach_cuts_it():
    p = MLPTaskFamily().sample(2, 0)
    scale = torch.tensor(1.0, requires_grad=True)
    weights = [scale * w for w in p.weights]
    state = {"m": [torch.zeros(1, requires_grad=True) * 2], "n": 3}
    loss, new, _ = inner_step(GD(3e-4), weights, state, StepContext(0, p))
    assert loss.requires_grad and new[0].requires_grad
    cut = detach_state({"w": new, "n": 3})
    assert not cut["w"][0].requires_grad and cut["n"] == 3
