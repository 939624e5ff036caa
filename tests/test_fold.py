"""st.nn.fold_batch_norm: the folded copy computes the same logits, the model itself is untouched."""
import numpy as np
import pytest

import striate as st
from striate.nn import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential


def _randomise_bn(model, seed=0):
    # fresh BN layers are the identity map (mean 0, var 1, gamma 1, beta 0): give them real statistics
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, BatchNorm):
            c = m.num_features
            m.running_mean[:] = rng.normal(0, 0.5, c)
            m.running_var[:] = rng.uniform(0.2, 3.0, c)
            m.gamma.data[:] = rng.uniform(0.5, 1.5, c)
            m.beta.data[:] = rng.normal(0, 0.3, c)
    return model


def _logits(model, x):
    with st.no_grad():
        return model(st.Tensor(x)).data


def _sequential_cnn():
    model = Sequential(Conv2D(8, 3, padding=1, use_bias=False, rng=0), BatchNorm(), ReLU(), MaxPool2D(2),
                       Conv2D(12, 3, stride=2, rng=1), BatchNorm(), ReLU(),
                       Flatten(), Dense(5, rng=2))
    return _randomise_bn(model.build((12, 12, 3)))


@pytest.mark.parametrize("build, shape, pairs", [
    (lambda: _randomise_bn(st.models.resnet20(rng=0)), (32, 32, 3), 19),
    (_sequential_cnn, (12, 12, 3), 2),
    (lambda: _randomise_bn(st.models.vgg_cifar(11, rng=0)), (32, 32, 3), 8),
], ids=["resnet20", "sequential", "vgg11_bn_cifar"])
def test_folded_copy_gives_the_same_logits(build, shape, pairs):
    model = build()
    folded = st.nn.fold_batch_norm(model, input_shape=shape)
    assert len(folded.folded) == pairs
    assert not any(isinstance(m, BatchNorm) for m in folded.modules())
    assert not folded.training
    x = np.random.default_rng(1).standard_normal((3,) + shape).astype(np.float32)
    want = _logits(model.eval(), x)
    got = _logits(folded, x)
    assert np.abs(want).max() > 0.1            # a real comparison, not of two zero outputs
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_the_model_itself_is_not_changed():
    model = _sequential_cnn()
    before = {k: v.data.copy() for k, v in model.named_parameters()}
    folded = st.nn.fold_batch_norm(model, (12, 12, 3))
    assert model.training                                          # still in training mode
    assert [type(m).__name__ for m in model][:3] == ["Conv2D", "BatchNorm", "ReLU"]
    assert model[0].b is None
    for k, v in model.named_parameters():
        np.testing.assert_array_equal(v.data, before[k])
    # the copy keeps the layer order, the BNs replaced in place
    assert [type(m).__name__ for m in folded][:3] == ["Conv2D", "Identity", "ReLU"]
    assert folded[0].b.shape == (8,)


class _Shared(st.nn.Module):
    """A conv whose output feeds both a BN and a residual sum: the BN cannot be folded into it."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = Conv2D(4, 3, padding=1, rng=0), BatchNorm()
        self.conv2, self.bn2 = Conv2D(4, 3, padding=1, activation="relu", rng=1), BatchNorm()

    def forward(self, x):
        z = self.conv(x)
        return self.bn2(self.conv2(self.bn(z) + z))


def test_a_conv_output_read_twice_or_activated_is_not_folded():
    model = _randomise_bn(_Shared().build((6, 6, 4)))
    folded = st.nn.fold_batch_norm(model, (6, 6, 4))
    assert folded.folded == []
    x = np.random.default_rng(2).standard_normal((2, 6, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(_logits(folded, x), _logits(model.eval(), x), rtol=1e-6, atol=1e-6)


def test_fold_batch_norm_errors():
    with pytest.raises(TypeError, match="takes a striate Module. Received: int"):
        st.nn.fold_batch_norm(3)
    with pytest.raises(ValueError, match="needs the \\(height, width, channels\\).*Received: input_shape=None"):
        st.nn.fold_batch_norm(Sequential(Conv2D(2, 3), BatchNorm()))
