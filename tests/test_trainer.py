import copy

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
