"""Type aliases shared across the package (the one types module)."""

from typing import Any, Callable, Mapping, NamedTuple

import jax
import numpy as np

Array = jax.Array
PRNGKey = jax.Array
PyTree = Any
Params = PyTree
ModelState = PyTree  # mutable collections such as batch_stats; {} when unused
Metrics = Mapping[str, Array]


class Batch(NamedTuple):
    """A batch of inputs and integer labels."""

    x: Array
    y: Array


# loss_fn(params, model_state, batch, *, key, step) -> (loss, (model_state, metrics))
LossFn = Callable[..., tuple[Array, tuple[ModelState, Metrics]]]

HostArray = np.ndarray
