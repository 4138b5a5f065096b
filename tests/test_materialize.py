"""Fusion barriers: identity in value and derivatives, one conditional on CPU."""

import jax
import jax.numpy as jnp
import numpy as np

from nnopt_jax.materialize import materialize, materialize_cotangent, materialized


def _f(barrier):
    return lambda x: jnp.sum(jnp.sin(barrier(x * x)) * x)


def test_identity_in_value_gradient_and_gradient_of_gradient_under_vmap():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 5)), jnp.float32)
    for barrier in (materialize, materialize_cotangent):
        np.testing.assert_array_equal(jax.vmap(barrier)(x), x)
        g = jax.vmap(jax.grad(_f(barrier)))(x)
        np.testing.assert_allclose(g, jax.vmap(jax.grad(_f(lambda v: v)))(x), rtol=1e-6)
        gg = lambda b: jax.grad(lambda x: jnp.sum(jax.grad(_f(b))(x) ** 2))(x)
        np.testing.assert_allclose(gg(barrier), gg(lambda v: v), rtol=1e-5)


def test_compiled_step_keeps_one_conditional_per_barrier_on_cpu():
    x = jnp.ones((4, 8), jnp.float32)
    hlo = jax.jit(jax.grad(_f(materialize))).lower(x).compile().as_text()
    # one conditional for the value, one for its cotangent
    assert hlo.count("conditional(") == 2, hlo.count("conditional(")
    hlo = jax.jit(jax.grad(_f(materialize_cotangent))).lower(x).compile().as_text()
    assert hlo.count("conditional(") == 1
    hlo = jax.jit(_f(materialize_cotangent)).lower(x).compile().as_text()
    assert "conditional(" not in hlo


def test_split_over_several_devices_drops_the_barriers_and_one_device_keeps_them():
    from nnopt_jax.parallel import split_over

    x = jnp.ones((4, 8), jnp.float32)

    def n_conditionals(n_devices):
        with split_over(n_devices):
            return str(jax.make_jaxpr(jax.grad(_f(materialize)))(x)).count("cond[")

    assert n_conditionals(1) == 2
    assert n_conditionals(2) == 0


def _g(x, b):
    return jnp.sum(jnp.sin(materialized(lambda u, v: u * u + v, x, b)) * x)


def test_materialized_equals_its_function_in_value_and_gradient():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(8,)), jnp.float32)
    np.testing.assert_array_equal(materialized(lambda u, v: u * u + v, x, b), x * x + b)
    plain = lambda x, b: jnp.sum(jnp.sin(x * x + b) * x)
    for got, want in zip(jax.grad(_g, argnums=(0, 1))(x, b), jax.grad(plain, argnums=(0, 1))(x, b)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_materialized_value_is_computed_in_its_branch_not_copied():
    x, b = jnp.ones((4, 8), jnp.float32), jnp.ones((8,), jnp.float32)
    hlo = jax.jit(jax.grad(_g)).lower(x, b).compile().as_text()
    assert hlo.count("conditional(") == 2  # the value and its cotangent
    value = jax.jit(lambda x, b: materialized(lambda u, v: u * u + v, x, b)).lower(x, b).compile().as_text()
    assert value.count("conditional(") == 1 and " copy(" not in value
    copied = jax.jit(lambda x, b: materialize(x * x + b)).lower(x, b).compile().as_text()
    assert " copy(" in copied  # what materialize of a computed value costs
