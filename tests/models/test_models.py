"""Model shapes and parameter counts against hand counts."""

import jax
import jax.numpy as jnp
import pytest

from nnopt_jax.models import MLP, LeNet300100, LeNet5Caffe, SmallLeNet, build_model, count_params


def _count(model, shape):
    return count_params(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))["params"])


def test_lenet300_100_weights():
    # 784*300+300 + 300*100+100 + 100*10+10
    assert _count(LeNet300100(), (1, 28, 28, 1)) == 266_610


def test_lenet5_caffe_weights():
    # conv 5*5*1*20+20, conv 5*5*20*50+50, fc 800*500+500, fc 500*10+10
    assert _count(LeNet5Caffe(), (1, 28, 28, 1)) == 520 + 25_050 + 400_500 + 5_010


@pytest.mark.parametrize("model,shape", [(MLP((32,), 10), (4, 8, 8, 1)),
                                         (SmallLeNet(), (4, 8, 8, 1)),
                                         (LeNet5Caffe(), (4, 28, 28, 1))])
def test_logit_shapes(model, shape):
    variables = model.init(jax.random.key(0), jnp.zeros(shape))
    assert model.apply(variables, jnp.zeros(shape)).shape == (shape[0], 10)


def test_mlp_dropout_needs_key_only_in_training():
    model = MLP((16,), 3, dropout=0.5)
    x = jnp.ones((2, 4))
    v = model.init(jax.random.key(0), x)
    a = model.apply(v, x, train=True, rngs={"dropout": jax.random.key(1)})
    b = model.apply(v, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not jnp.allclose(a, b)
    assert jnp.allclose(model.apply(v, x), model.apply(v, x))


def test_build_model_shorthand_and_errors():
    m = build_model("mlp", num_classes=5, width=7, depth=3)
    assert m.features == (7, 7, 7)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", num_classes=10)
    with pytest.raises(ValueError, match="unknown activation"):
        MLP((4,), 2, activation="relu6").init(jax.random.key(0), jnp.zeros((1, 3)))
