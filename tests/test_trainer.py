import copy

import pytest
import torch

from metateleport import estimator, trainer, unroll
from metateleport.config import build_family, build_optimizer, config_from_dict
from metateleport.trainer import MetaTrainer


def small_cfg(**train):
    base = {"batch_size": 2, "n_steps": 4, "unroll": 2, "trajectories": 4, "val_problems": 2}
    return config_from_dict({"model": {"variant": "update_tele"}, "train": {**base, **train}})


def test_trainer_handed_its_objects_equals_the_one_that_builds_them():
    cfg = small_cfg()
    built = MetaTrainer(cfg)
    torch.manual_seed(cfg.train.seed)
    handed = MetaTrainer(cfg, family=build_family(cfg), opt=build_optimizer(cfg))
    while not built.done:
        assert built.window() == handed.window()
    a, b = built.opt.state_dict(), handed.opt.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.testing.assert_close(built.validation_losses(), handed.validation_losses(),
                               rtol=0, atol=0)


def test_a_handed_optimizer_is_trained_in_place_and_torch_is_not_reseeded():
    cfg = small_cfg()
    opt = build_optimizer(cfg)
    torch.manual_seed(1234)
    rng = torch.get_rng_state()
    t = MetaTrainer(cfg, opt=opt)
    assert t.opt is opt and torch.equal(torch.get_rng_state(), rng)
    before = [p.detach().clone() for p in opt.parameters()]
    t.window()
    assert any(not torch.equal(a, b) for a, b in zip(before, opt.parameters()))


def test_validation_problems_are_drawn_on_first_use():
    calls = []

    class Counting(type(build_family(small_cfg()))):
        def sample(self, batch_size, seed, split="train", start=0):
            calls.append(str(split))
            return super().sample(batch_size, seed, split, start)

    cfg = small_cfg()
    t = MetaTrainer(cfg, family=Counting(widths=[20, 20, 20], n_samples=20))
    t.window()
    assert calls == ["Split.TRAIN"]
    assert t.val_problems.batch_size == 2 and t.val_problems is t.val_problems
    assert calls == ["Split.TRAIN", "Split.VAL"]


def test_old_import_path_reexports_the_same_objects():
    assert unroll.MetaTrainer is trainer.MetaTrainer
    for name in ("META_LOSSES", "META_LOSS_ON", "apply_meta_step", "unroll_window",
                 "window_meta_loss"):
        assert getattr(unroll, name) is getattr(estimator, name)
    assert unroll.build_family is build_family and unroll.build_optimizer is build_optimizer
    assert set(unroll.__all__) <= set(dir(unroll))


def test_trainer_on_a_mixed_architecture_batch_trains_and_resumes_exactly():
    from metateleport.config import config_from_dict
    from metateleport.trainer import MetaTrainer

    cfg = config_from_dict({
        "task": {"family": "distribution",
                 "options": {"depth": [1, 2], "width": [4, 7], "group_size": 2}},
        "model": {"variant": "update_tele", "guard": 2.0, "update_input": "rms",
                  "tele_input": "normalized", "tele_norm_over": "network"},
        "train": {"batch_size": 4, "n_steps": 4, "unroll": 2, "trajectories": 8,
                  "val_problems": 4}})
    a = MetaTrainer(cfg)
    a.window()
    assert "mixed" in a.carry and len(a.carry["mixed"]) == 2
    saved = copy.deepcopy(a.state_dict())  # the live tensors move on with a
    b = MetaTrainer(cfg)
    b.load_state_dict(saved)
    for t in (a, b):
        while not t.done:
            stats = t.window()
    assert "guard_refused" in stats
    for x, y in zip(a.opt.state_dict().values(), b.opt.state_dict().values()):
        assert torch.equal(x, y)
    assert a.validation_losses().shape == (5, 4)


def _meta_train_off_and_on(model: dict, key: str, attr: str, rtol: float, atol: float):
    """4 windows of a float64 trainer of ``model`` with train.<key> off and on: every
    CoordinateLSTM has ``attr`` set as asked, and the windows' meta-losses and gradient norms
    (to ``rtol``) and the final parameters (to ``rtol`` and ``atol``) are the same. Returns the
    parameters without it and the number of CoordinateLSTMs."""
    runs = {}
    for on in (False, True):
        cfg = config_from_dict({"model": model, "train": {
            "batch_size": 2, "n_steps": 4, "unroll": 2, "trajectories": 4, "val_problems": 2,
            "dtype": "float64", key: on}})
        t = MetaTrainer(cfg)
        lstms = [m for m in t.opt.modules() if m.__class__.__name__ == "CoordinateLSTM"]
        assert all(getattr(m, attr) is on for m in lstms)
        stats = [t.window() for _ in range(4)]
        runs[on] = stats, t.opt.state_dict()
    for a, b in zip(runs[False][0], runs[True][0]):
        for name in ("meta_loss", "grad_norm"):
            assert abs(a[name] - b[name]) <= rtol * max(1.0, abs(a[name])), name
    a, b = runs[False][1], runs[True][1]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=atol)
    return a, len(lstms)


def test_recomputing_the_lstm_in_backward_gives_the_same_meta_training():
    """train.recompute_lstm trades memory for time only: the same windows, meta-gradients and
    parameters as keeping the activations (float64; the lookahead input included)."""
    a, lstms = _meta_train_off_and_on({"variant": "update_tele", "lookahead_input": True},
                                      "recompute_lstm", "recompute", 1e-10, 1e-12)
    assert lstms == 2
    assert "recompute" not in " ".join(a)  # not part of the checkpoint


@pytest.mark.parametrize("model", [{"variant": "update_tele", "lookahead_input": True},
                                   {"variant": "update_tele", "tele_group": "diag"},
                                   {"variant": "lr_tele"}])
def test_the_fused_lstm_gives_the_same_meta_training(model):
    """train.fused_lstm changes the kernel, not the meta-training: the same windows,
    meta-gradients and parameters as nn.LSTM's kernel (float64; with the lookahead input,
    whose feature differentiates through m1, a diag m2, and LSTM(lr,tele))."""
    _, lstms = _meta_train_off_and_on(model, "fused_lstm", "fused_training", 1e-9, 1e-11)
    assert lstms


def test_the_fused_lstm_is_the_cpu_default_and_cuda_keeps_cudnn(monkeypatch):
    """train.fused_lstm unset (null) steps the LSTMs fused on CPU and with nn.LSTM's kernel on
    a CUDA device (where the fused cell is untimed); true or false is obeyed on both."""
    from metateleport import trainer as trainer_module

    seen = []
    monkeypatch.setattr(trainer_module, "set_fused_training", lambda _, on: seen.append(on))
    # only the switch is asked for: the meta-optimizer stays on the CPU
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: self)
    for value in (None, True, False):
        cfg = config_from_dict({"model": {"variant": "update_tele"},
                                "train": {"batch_size": 2, "n_steps": 4, "unroll": 2,
                                          "fused_lstm": value}})
        for device in ("cpu", "cuda"):
            MetaTrainer(cfg, device=device)
    assert seen == [True, False, True, True, False, False]
    assert config_from_dict({}).train.fused_lstm is None


@pytest.mark.parametrize("layers,chunk", [(2, None), (2, 128), (1, 64), (3, 200)])
def test_the_fused_cell_has_the_lstm_kernels_gradients(layers, chunk):
    """The hand-written backward against autograd through nn.LSTM: the gradients of the
    outputs, the states, the inputs and every parameter over three chained steps (float64)."""
    from metateleport.networks import CoordinateLSTM

    torch.manual_seed(0)
    lstm = CoordinateLSTM(3, 8, layers).double()
    lstm.chunk = chunk
    x = [torch.randn(500, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    start = [torch.randn(layers, 500, 8, dtype=torch.float64, requires_grad=True)
             for _ in range(2)]
    got = {}
    for on in (False, True):
        lstm.fused_training = on
        state, total = start, 0
        for step in x:
            out, state = lstm(step, state)
            total = total + out.pow(2).sum() + state[1].sin().sum()
        leaves = [*x, *start, *lstm.parameters()]
        got[on] = (total, torch.autograd.grad(total, leaves))
    torch.testing.assert_close(got[True][0], got[False][0], rtol=1e-12, atol=1e-12)
    for a, b in zip(got[False][1], got[True][1]):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-11)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_fused_cell_on_cuda():
    from metateleport.networks import CoordinateLSTM

    torch.manual_seed(0)
    lstm = CoordinateLSTM(2, 20).cuda()
    x = torch.randn(3000, 2, device="cuda", requires_grad=True)
    state = lstm.init_state(3000, x)
    grads = {}
    for on in (False, True):
        lstm.fused_training = on
        out, state_ = lstm(x, state)
        grads[on] = torch.autograd.grad(out.pow(2).sum() + state_[1].sum(),
                                        [x, *lstm.parameters()])
    for a, b in zip(grads[False], grads[True]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_a_recomputing_lstm_keeps_only_its_inputs_for_backward():
    from metateleport.networks import CoordinateLSTM

    lstm = CoordinateLSTM(2, 20).double()
    x = torch.randn(500, 2, dtype=torch.float64, requires_grad=True)
    state = lstm.init_state(500, x)
    grads, kept = {}, {}
    for on in (False, True):
        lstm.recompute = on
        saved: list[int] = []

        def pack(t, saved=saved):
            saved.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out, (h, c) = lstm(x, state)
        (out.sum() + c.square().sum()).backward()
        grads[on] = [x.grad.clone(), *(p.grad.clone() for p in lstm.parameters())]
        kept[on] = sum(saved)
        x.grad = None
        lstm.zero_grad()
    for a, b in zip(grads[False], grads[True]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert kept[True] < kept[False] / 4, kept  # the gates' activations are not kept
