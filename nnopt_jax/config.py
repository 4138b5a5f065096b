"""Experiment configs: Python files with ``get_config(variant)`` and dotted overrides.

A config file (big_vision style) defines ``get_config(variant="default")`` and
returns a :class:`Config`. On the command line a variant follows a colon::

    nnopt train --config configs/mnist_lenet300.py:smoke --set train.learning_rate=3e-4
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import pathlib
from typing import Any, Iterable


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
    if not file.is_file():
        raise ConfigError(f"config file {file} not found; pass a Python file from configs/, "
                          "e.g. --config configs/mnist_lenet300.py")
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
    except (ValueError, SyntaxError):
        return text  # a bare string such as relu


def _coerce(key: str, value: Any, old: Any) -> Any:
    """Converts an override to the type of the value it replaces."""
    if old is None or isinstance(value, type(old)):
        return value
    if isinstance(old, bool):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    elif isinstance(old, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(old)(value)
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
