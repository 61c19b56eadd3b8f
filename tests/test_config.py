from pathlib import Path

import pytest

from metateleport.config import ConfigError, config_from_dict, config_to_dict, load_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_and_roundtrip():
    cfg = config_from_dict({})
    assert cfg.task.widths == [20, 20, 20] and cfg.model.variant == "update_tele"
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_int_is_accepted_for_float_and_null_for_optional():
    cfg = config_from_dict({"train": {"meta_lr": 1}, "model": {"tele_norm": None}})
    assert cfg.train.meta_lr == 1.0 and isinstance(cfg.train.meta_lr, float)
    assert cfg.model.tele_norm is None


@pytest.mark.parametrize(
    "data, match",
    [
        ({"train": {"batch_sise": 8}}, r"train\.batch_sise: unknown key; allowed keys in train: "),
        ({"trian": {}}, r"trian: unknown section; allowed: task, model, train"),
        ({"train": {"batch_size": "8"}}, r"train\.batch_size: expected int, got str '8'"),
        ({"train": {"batch_size": 2.5}}, r"train\.batch_size: expected int"),
        ({"train": {"batch_size": True}}, r"train\.batch_size: expected int"),
        ({"train": {"batch_size": 0}}, r"train\.batch_size: 0 is out of range; allowed: >= 1"),
        ({"train": {"meta_lr": -1e-3}}, r"train\.meta_lr: -0\.001 is out of range"),
        ({"model": {"variant": "tele"}}, r"model\.variant: 'tele' is not one of"),
        ({"model": {"variant": "update_random_tele", "tele_norm": None}},
         r"model\.tele_norm: variant update_random_tele needs a fixed norm"),
        ({"train": {"meta_loss": "mse"}}, r"train\.meta_loss: 'mse' is not one of"),
        ({"task": {"widths": [20, "a", 20]}}, r"task\.widths\[1\]: expected int"),
        ({"task": {"widths": [20, 20]}}, r"task\.widths: need >= 3"),
        ({"task": {"n_samples": 30}}, r"task\.n_samples: 30 > task\.widths\[0\]=20"),
        ({"train": {"n_steps": 100, "unroll": 7}}, r"train\.unroll: 7 must divide"),
        ({"model": {"lr_init": 2e-3}}, r"model\.lr_init: 0\.002 must be < model\.lr_max"),
        ({"model": {"tele_norm": 0}}, r"model\.tele_norm: 0 is out of range"),
        ({"model": {"update_form": "gradient"}},
         r"model\.update_form: gradient .* needs model\.update_input: rms"),
        ({"model": {"update_form": "gradient", "update_input": "rms", "variant": "lr_tele"}},
         r"model\.update_form: gradient .* variant: lr_tele"),
        ({"model": {"update_tilt": 1.0}},
         r"model\.update_tilt: 1\.0 bounds the gradient, adam or mixed form"),
        ({"model": {"update_form": "gradient", "update_input": "rms", "update_tilt": 0}},
         r"model\.update_tilt: 0 is out of range"),
        ({"model": {"update_form": "gradient", "update_input": "rms",
                    "update_tilt_over": "layer"}},
         r"model\.update_tilt_over: layer .* model\.update_tilt is null"),
        ({"model": {"update_form": "gradient", "update_input": "rms", "update_tilt": 1.0,
                    "update_tilt_over": "unit"}},
         r"model\.update_tilt_over: 'unit' is not one of"),
        ({"model": {"update_form": "gradient", "update_input": "rms",
                    "update_tilt_first": 1.0}},
         r"model\.update_tilt_first: 1\.0 bounds the first layer's .* model\.update_tilt is null"),
        ({"model": {"update_form": "gradient", "update_input": "rms", "update_tilt": 3.0,
                    "update_tilt_first": -1}},
         r"model\.update_tilt_first: -1 is out of range"),
        ({"train": 3}, r"train: expected a mapping"),
    ],
)
def test_errors_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_load_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  variant: update\ntrain:\n  batch_size: 4\n")
    cfg = load_config(path, ["train.batch_size=16", "model.tele_norm=null", "task.widths=[8,8,8]",
                             "task.n_samples=8"])
    assert cfg.model.variant == "update" and cfg.train.batch_size == 16
    assert cfg.model.tele_norm is None and cfg.task.widths == [8, 8, 8]


@pytest.mark.parametrize(
    "override, match",
    [("train.batch_size", "expected section.key=value"), ("batch_size=3", "section.key=value"),
     ("train.nope=3", r"train\.nope: unknown key"), ("train.batch_size=[", "cannot parse"),
     ("train..x=1", "sub=value")],
)
def test_bad_overrides(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_a_nested_override_sets_one_option_and_keeps_the_others():
    config = REPO / "configs" / "general_update_tele.yaml"
    options = load_config(config, ["task.options.digits=0.5"]).task.options
    assert options["digits"] == 0.5
    assert options["depth"] == [1, 3] and options["group_size"] == 4
    with pytest.raises(ConfigError, match=r"task\.options\.nope: unknown key"):
        load_config(config, ["task.options.nope=1"])
    with pytest.raises(ConfigError, match=r"train\.batch_size is 8, not a mapping"):
        load_config(config, ["train.batch_size.x=3"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(scalar)


def test_shipped_configs_load():
    from pathlib import Path

    names = sorted(p.stem for p in Path("configs").glob("*.yaml"))
    assert {"quick", "update_tele", "update", "lr_tele"} <= set(names)
    real = {n: load_config(f"configs/{n}.yaml") for n in ("update_tele", "update", "lr_tele")}
    # the three real experiments compare fairly: same task, unroll and budget
    for cfg in real.values():
        assert cfg.task == real["update_tele"].task
        assert cfg.train == real["update_tele"].train
    assert {c.model.variant for c in real.values()} == {"update_tele", "update", "lr_tele"}
