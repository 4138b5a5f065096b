"""Experiment configs: Python files with ``get_config(variant)`` and dotted overrides.

A config file (big_vision style) defines ``get_config(variant="default")`` and
returns a :class:`Config`. On the command line a variant follows a colon::

    nnopt train --config configs/mnist_lenet300.py:smoke --set train.learning_rate=3e-4
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import importlib.util
import json
import math
import numbers
import pathlib
from typing import Any, Callable, Iterable, Mapping


class ConfigError(ValueError):
    """A config file, variant or override is invalid."""


class Config(dict):
    """A dict with attribute access; nested dicts become :class:`Config` too."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __setitem__(self, key, value):
        if isinstance(value, dict) and not isinstance(value, Config):
            value = Config(value)
        super().__setitem__(key, value)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"config has no key {name!r}; known keys: {sorted(self)}") from None

    def __setattr__(self, name, value):
        self[name] = value

    def __deepcopy__(self, memo):
        return Config(copy.deepcopy(dict(self), memo))

    def copy(self) -> "Config":
        return copy.deepcopy(self)

    def to_dict(self) -> dict:
        """Plain nested dicts (JSON-serialisable where the values are)."""
        return {k: v.to_dict() if isinstance(v, Config) else v for k, v in self.items()}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=str, **kwargs)


def load_config(spec: str | pathlib.Path) -> Config:
    """Loads ``path/to/file.py[:variant]`` by calling its ``get_config(variant)``.

    Raises:
        ConfigError: the file is missing, has no ``get_config``, or the variant
            is unknown to it.
    """
    spec = str(spec)
    path, _, variant = spec.partition(":")
    variant = variant or "default"
    file = pathlib.Path(path)
    if file.is_dir():
        raise ConfigError(f"config {file} is a directory; pass one of its Python files, "
                          "e.g. --config configs/mnist_lenet300.py")
    if not file.is_file():
        raise ConfigError(f"config file {file} not found; pass a Python file from configs/, "
                          "e.g. --config configs/mnist_lenet300.py")
    if file.suffix != ".py":
        raise ConfigError(f"config file {file} is not a Python file (.py) with get_config()")
    module_spec = importlib.util.spec_from_file_location(f"_nnopt_config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # a syntax or import error in user code
        raise ConfigError(f"config file {file} failed to load: {err!r}") from err
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {file} defines no get_config(variant) function")
    try:
        cfg = module.get_config(variant)
    except (KeyError, ValueError) as err:
        raise ConfigError(f"config {file}: unknown variant {variant!r} ({err})") from err
    if not isinstance(cfg, dict):
        raise ConfigError(f"config {file}: get_config must return a Config, got {type(cfg)}")
    return Config(cfg)


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    # TypeError: e.g. "{[]: 1}"; MemoryError/RecursionError: deeply nested brackets
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text  # a bare string such as relu


def _coerce(key: str, value: Any, old: Any) -> Any:
    """Converts an override to the type of the value it replaces."""
    if old is None or isinstance(value, type(old)):
        return value
    if isinstance(old, bool):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"override {key}={value!r}: too large for a float") from None
    elif isinstance(old, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(old)(value)
    elif isinstance(old, dict) and isinstance(value, dict):
        return type(old)(value)  # e.g. --set "train.level_quantile_by_layer={'conv1': 0.9}"
    raise ConfigError(f"override {key}={value!r}: expected a value of type "
                      f"{type(old).__name__} (current value {old!r})")


def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """Returns a copy of ``cfg`` with ``a.b.c=value`` overrides applied.

    Values are parsed as Python literals (``1e-3``, ``[300, 100]``, ``True``) and
    must match the type of the value they replace, so typos fail loudly.

    Raises:
        ConfigError: malformed override, unknown key, or wrong value type.
    """
    cfg = cfg.copy()
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        *parents, leaf = key.strip().split(".")
        node = cfg
        for depth, part in enumerate(parents):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parents[:depth + 1])
                raise ConfigError(f"unknown config key {where!r} in override {item!r}; "
                                  f"known keys: {sorted(node) if isinstance(node, dict) else []}")
            node = node[part]
        if not isinstance(node, dict) or leaf not in node:
            raise ConfigError(f"unknown config key {key!r} in override {item!r}; "
                              f"known keys at that level: {sorted(node)}")
        node[leaf] = _coerce(key, _parse_value(text.strip()), node[leaf])
    return cfg


# ----------------------------------------------------------------------------- comparison

ABSENT = "(absent)"
"""The value :func:`config_diff` gives a key that one side lacks."""


def canonical(config: Any) -> Any:
    """The JSON form of ``config``: tuples become lists, unknown objects strings."""
    return json.loads(json.dumps(config, default=str))


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted key: leaf}`` of nested mappings; an empty mapping below the top is a leaf."""
    if isinstance(tree, Mapping) and (tree or not prefix):
        flat = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree} if prefix else {"(value)": tree}


def matches_any(key: str, patterns: Iterable[str]) -> bool:
    """Whether dotted ``key`` matches one of the ``fnmatch`` patterns or lies under one."""
    return any(fnmatch.fnmatchcase(key, p) or key.startswith(p + ".") for p in patterns)


def config_diff(old: Any, new: Any, may_change: Iterable[str] = (),
                old_defaults: Mapping[str, Any] | None = None) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every leaf of two nested configs
    that differs and is not in ``may_change``; a side that lacks the key has the
    value :data:`ABSENT`, except that ``old`` lacking a key of ``old_defaults``
    has that default (keys added after ``old`` was written, with the value it
    implied)."""
    patterns = tuple(may_change)
    a, b = flatten(canonical(old)), flatten(canonical(new))
    a = {**{k: v for k, v in canonical(dict(old_defaults or {})).items() if k in b}, **a}
    return [(k, a.get(k, ABSENT), b.get(k, ABSENT)) for k in sorted(set(a) | set(b))
            if not matches_any(k, patterns) and a.get(k, ABSENT) != b.get(k, ABSENT)]


def describe_diff(diff: Iterable[tuple[str, Any, Any]], *, limit: int = 8) -> str:
    """``"key: old -> new, ..."`` for the first ``limit`` entries of a :func:`config_diff`."""
    diff = list(diff)

    def show(value):
        return value if value == ABSENT else _short(value, 40)

    text_ = ", ".join(f"{k}: {show(a)} -> {show(b)}" for k, a, b in diff[:limit])
    return text_ + (f" (and {len(diff) - limit} more)" if len(diff) > limit else "")


# ----------------------------------------------------------------------------- validation

_MISSING = object()

Check = Callable[[Any], "str | None"]
"""A value check: returns None when the value is valid, else what was expected."""


def get_path(cfg: Mapping, key: str, default: Any = None) -> Any:
    """The value at dotted ``key`` (``"train.batch_size"``), or ``default``."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def integer(low: int | None = None, high: int | None = None) -> Check:
    """An int (not a bool) in ``[low, high]``."""
    bounds = _bounds_text(low, high, low_open=False, high_open=False)

    def check(value):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        ok = ok and (low is None or value >= low) and (high is None or value <= high)
        return None if ok else f"an integer{bounds}"

    return check


def real(low: float | None = None, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False) -> Check:
    """A finite number (int or float, not a bool) between ``low`` and ``high``."""
    bounds = _bounds_text(low, high, low_open=low_open, high_open=high_open)

    def check(value):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        return None if ok else f"a finite number{bounds}"

    return check


def one_of(*choices: Any) -> Check:
    """One of ``choices``."""
    def check(value):
        try:
            return None if value in choices else f"one of {', '.join(map(repr, choices))}"
        except TypeError:  # unhashable etc.
            return f"one of {', '.join(map(repr, choices))}"
    return check


def text(value: Any) -> str | None:
    """A string check."""
    return None if isinstance(value, str) else "a string"


def boolean(value: Any) -> str | None:
    """A ``True``/``False`` check."""
    return None if isinstance(value, bool) else "true or false"


def optional(check: Check) -> Check:
    """``check``, or None (unset)."""
    def opt(value):
        problem = None if value is None else check(value)
        return None if problem is None else f"{problem} or None"
    return opt


def sequence_of(check: Check, *, min_len: int = 0) -> Check:
    """A list or tuple of at least ``min_len`` values that pass ``check``."""
    def seq(value):
        if isinstance(value, (list, tuple)) and len(value) >= min_len and all(
                check(v) is None for v in value):
            return None
        return f"a list of at least {min_len} values, each {check(_MISSING)}"
    return seq


def mapping_of(check: Check) -> Check:
    """A dict from names (strings) to values that pass ``check``."""
    def mapping(value):
        if isinstance(value, dict) and all(isinstance(k, str) and check(v) is None for k, v in value.items()):
            return None
        return f"a dict from names to values, each {check(_MISSING)}"
    return mapping


def _bounds_text(low, high, *, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def check_config(cfg: Mapping, rules: Mapping[str, Check], *,
                 required: Iterable[str] = ()) -> None:
    """Checks the values at dotted keys against ``rules`` (absent keys are skipped
    unless ``required``).

    Raises:
        ConfigError: every invalid or missing value, named by its dotted key, in
            one message that says how to fix it.
    """
    problems = []
    for key in required:
        if get_path(cfg, key, _MISSING) is _MISSING:
            problems.append(f"{key} is missing")
    for key, check in rules.items():
        value = get_path(cfg, key, _MISSING)
        if value is _MISSING:
            continue
        expected = check(value)
        if expected is not None:
            problems.append(f"{key}={_short(value)} (expected {expected})")
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems)
                          + "; fix the config file or override with --set KEY=VALUE")


def _short(value: Any, limit: int = 60) -> str:
    text_ = repr(value)
    return text_ if len(text_) <= limit else text_[:limit - 3] + "..."
