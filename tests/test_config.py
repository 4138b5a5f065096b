"""Config files, variants and dotted overrides."""

import pathlib

import pytest

from nnopt_jax.config import Config, ConfigError, apply_overrides, load_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_has_default_and_smoke_variants(path):
    default = load_config(path)
    smoke = load_config(f"{path}:smoke")
    assert isinstance(default, Config) and isinstance(smoke, Config)
    assert default != smoke, "the smoke variant should be smaller than the default"
    assert "nnopt " in path.read_text(), "the docstring should give the run command"


def test_unknown_variant_is_an_error():
    with pytest.raises(ConfigError, match="unknown variant"):
        load_config(ROOT / "configs" / "mnist_lenet300.py:huge")


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.py")
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="get_config"):
        load_config(bad)


def test_overrides_parse_and_keep_types():
    cfg = Config(train=dict(lr=0.1, epochs=3, nesterov=False, widths=[1, 2]), name="a")
    out = apply_overrides(cfg, ["train.lr=1e-3", "train.epochs=5", "train.nesterov=true",
                                "train.widths=[3, 4]", "name=relu"])
    assert out.train.lr == 1e-3 and out.train.epochs == 5 and out.train.nesterov is True
    assert out.train.widths == [3, 4] and out.name == "relu"
    assert cfg.train.lr == 0.1, "overrides must not mutate the input"
    assert apply_overrides(cfg, ["train.lr=1"]).train.lr == 1.0  # int widens to float


@pytest.mark.parametrize("override,match", [
    ("train.lrr=0.1", "unknown config key 'train.lrr'"),
    ("trian.lr=0.1", "unknown config key 'trian'"),
    ("train.epochs=abc", "expected a value of type int"),
    ("train.lr", "not of the form"),
])
def test_bad_overrides_are_clear_errors(override, match):
    cfg = Config(train=dict(lr=0.1, epochs=3))
    with pytest.raises(ConfigError, match=match):
        apply_overrides(cfg, [override])


def test_attribute_access_and_json():
    cfg = Config(a=dict(b=1))
    assert cfg.a.b == 1
    with pytest.raises(AttributeError, match="known keys"):
        cfg.missing
    assert cfg.to_json() == '{"a": {"b": 1}}'
