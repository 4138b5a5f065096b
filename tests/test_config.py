"""Config files, variants and dotted overrides."""

import pathlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

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
    per_layer = apply_overrides(Config(train=dict(by_layer={})), ["train.by_layer={'conv1': 0.9}"])
    assert per_layer.train.by_layer == {"conv1": 0.9} and isinstance(per_layer.train.by_layer, Config)


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


def test_config_that_is_a_directory_or_not_python(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a Python file"):
        load_config(tmp_path / "c.json:smoke")


def test_check_config_names_every_bad_value_and_missing_key():
    from nnopt_jax.config import check_config, integer, one_of, optional, real, text
    cfg = Config(train=dict(bs=0, lr=float("inf"), frac=1.0, opt="lion", flag=True),
                 data=dict(dir=3))
    rules = {"train.bs": integer(1), "train.lr": real(0.0, low_open=True),
             "train.frac": real(0.0, 1.0, high_open=True), "train.opt": one_of("adam", "sgd"),
             "train.flag": integer(0), "data.dir": optional(text), "train.absent": integer(0)}
    with pytest.raises(ConfigError) as info:
        check_config(cfg, rules, required=("train.epochs",))
    msg = str(info.value)
    for text_ in ("train.epochs is missing", "train.bs=0 (expected an integer >= 1)",
                  "train.lr=inf (expected a finite number > 0.0)",
                  "train.frac=1.0 (expected a finite number in [0.0, 1.0))",
                  "train.opt='lion' (expected one of 'adam', 'sgd')",
                  "train.flag=True (expected an integer >= 0)",
                  "data.dir=3 (expected a string or None)", "--set"):
        assert text_ in msg, text_
    assert "absent" not in msg
    check_config(Config(train=dict(bs=2, lr=0.1)), rules)  # valid values pass


def _validator(path):
    """The validation function of the command that runs the config at ``path``."""
    from nnopt_jax import training
    from nnopt_jax.bayes import run as compress_run
    from nnopt_jax.nas.darts import search, train
    kind = path.parent.name
    if kind == "compress":
        return compress_run.validate_config
    if kind == "hpo":
        return lambda cfg: training.validate_config(cfg.base)
    if kind == "nas":
        return (search if "search" in path.name else train).validate_config
    if kind == "optimize":
        from nnopt_jax.optimize import recipe, study

        return lambda cfg: (study._check(cfg), recipe.recipe_space(cfg.space))
    return training.validate_config


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_passes_its_commands_validation(path):
    for variant in ("default", "smoke"):
        _validator(path)(load_config(f"{path}:{variant}"))


# ----------------------------------------------------------------------------- property

SMOKE = load_config(f"{ROOT / 'configs' / 'digits_mlp.py'}:smoke")
TRAIN_DATA_KEYS = sorted(f"{block}.{k}" for block in ("train", "data") for k in SMOKE[block])

_scalars = st.one_of(st.integers(-10**6, 10**6), st.integers(-10**40, 10**40),
                     st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                     st.sampled_from(["relu", "adam", "sgd", "cosine", "digits", "", "1e-3"]))
_awkward = st.sampled_from(["{[]: 1}", "{{}}", "1e999", "-1e999", "(", "[1, [2]]", "1,2",
                            "0x10", "True", "none", "=", " 7 "])
_values = st.one_of(_scalars.map(repr), _scalars.map(str), _awkward,
                    st.integers(-10**400, 10**400).map(str),
                    st.lists(_scalars, max_size=3).map(repr), st.text(max_size=12))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(st.sampled_from(TRAIN_DATA_KEYS + ["train.nope", "data"]), min_size=1,
                     max_size=3),
       values=st.lists(_values, min_size=3, max_size=3))
def test_random_overrides_are_accepted_or_a_config_error(keys, values):
    """`--set key=value` for train/data keys with random values: the loading and
    validation path either accepts the config (and then optax accepts its
    optimiser) or raises a ConfigError, never another exception."""
    from nnopt_jax.training import make_optimizer, validate_config
    overrides = [f"{k}={v}" for k, v in zip(keys, values)]
    try:
        cfg = apply_overrides(SMOKE, overrides)
        validate_config(cfg)
    except ConfigError:
        return
    make_optimizer(cfg.train, steps_per_epoch=1)
