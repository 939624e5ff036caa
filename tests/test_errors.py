"""User errors are refused at the door with messages that name the argument, state the rule and
show what was received. The text is pinned: it is part of the user interface."""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import nn

X = np.zeros((2, 8, 8, 3), np.float32)
W = np.zeros((3, 3, 3, 4), np.float32)


# --------------------------------------------------------------------------- rank
@pytest.mark.parametrize("op", [
    lambda x: F.conv2d(x, W),
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.avg_pool2d(x, 2),
    lambda x: F.global_avg_pool2d(x),
    lambda x: nn.Conv2D(4, 3)(st.Tensor(x)),
], ids=["conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "Conv2D"])
def test_wrong_rank_names_the_layout_and_the_fix(op):
    with pytest.raises(ValueError, match=r"expected 4D input \(batch, height, width, channels\), "
                                         r"got shape \(8, 8, 3\)\. If this is one image, add a batch axis with x\[None\]"):
        op(X[0])
    with pytest.raises(ValueError, match=r"got shape \(28, 28\)\. If this is one grayscale image, use x\[None, :, :, None\]"):
        op(np.zeros((28, 28), np.float32))


def test_wrong_rank_of_weights():
    with pytest.raises(ValueError, match=r"conv2d: expected 4D weights \(kernel_h, kernel_w, in_channels // groups, "
                                         r"out_channels\), got shape \(3, 3, 3\)"):
        F.conv2d(X, W[..., 0])


# --------------------------------------------------------------------------- channels, groups, geometry
def test_channel_mismatch_against_weights():
    with pytest.raises(ValueError, match=r"conv2d: channel mismatch between input and weights: x has 3 channels, "
                                         r"but w of shape \(3, 3, 4, 4\) \(HWIO\) with groups=1 expects 4"):
        F.conv2d(X, np.zeros((3, 3, 4, 4), np.float32))


def test_channel_mismatch_with_groups():
    x = np.zeros((1, 5, 5, 4), np.float32)
    with pytest.raises(ValueError, match=r"x has 4 channels, but w of shape \(3, 3, 1, 4\) \(HWIO\) with groups=2 expects 2"):
        F.conv2d(x, np.zeros((3, 3, 1, 4), np.float32), groups=2)


def test_built_layer_refuses_a_different_channel_count():
    conv = nn.Conv2D(4, 3)
    conv(st.Tensor(X))
    with pytest.raises(ValueError, match="channel mismatch between input and weights: x has 5 channels"):
        conv(st.Tensor(np.zeros((1, 8, 8, 5), np.float32)))


@pytest.mark.parametrize("kernel,padding,stride,dilation", [
    (9, 0, 1, 1),
    (5, "valid", 1, 2),      # effective kernel 9
    (11, 1, 1, 1),           # padded 10 < 11
])
def test_kernel_larger_than_padded_input(kernel, padding, stride, dilation):
    w = np.zeros((kernel, kernel, 3, 2), np.float32)
    with pytest.raises(ValueError, match=r"conv2d: the kernel is larger than the padded input, so the computed output "
                                         r"size would be zero or negative\. Received: input \(height, width\)=\(8, 8\)"):
        F.conv2d(X, w, padding=padding, stride=stride, dilation=dilation)


def test_kernel_larger_than_input_message_shows_padded_size_and_output():
    with pytest.raises(ValueError, match=r"padded=\(10, 10\), kernel=\(11, 11\).*output would be \(0, 0\)"):
        F.conv2d(X, np.zeros((11, 11, 3, 2), np.float32), padding=1)


def test_pool_window_larger_than_input():
    with pytest.raises(ValueError, match=r"max_pool2d: the kernel is larger than the padded input.*kernel=\(9, 9\)"):
        F.max_pool2d(X, 9)
    with pytest.raises(ValueError, match=r"avg_pool2d: the kernel is larger than the padded input"):
        F.avg_pool2d(X, (2, 10))


def test_pool_padding_that_makes_windows_of_padding_only_is_refused():
    # a pad beyond dilation * (kernel - 1) makes windows of padding only (max pooling: -inf outputs);
    # kernel 3 with padding 2 is fine: every window still covers an input cell (see test_onnx_pooling)
    with pytest.raises(ValueError, match=r"max_pool2d: padding must not exceed dilation \* \(kernel_size - 1\) = "
                                         r"\(1, 1\) per side, or some windows would cover only padding.*"
                                         r"kernel_size=\(2, 2\), dilation=\(1, 1\), padding=2"):
        F.max_pool2d(X, 2, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool2d: padding must not exceed dilation \* \(kernel_size - 1\)"):
        F.avg_pool2d(X, 3, 1, padding=(0, 3))


def test_groups_must_divide_input_channels():
    with pytest.raises(ValueError, match=r"conv2d: the number of input channels must be evenly divisible by groups\. "
                                         r"Received: groups=2, input channels=3"):
        F.conv2d(X, np.zeros((3, 3, 1, 4), np.float32), groups=2)


def test_groups_must_divide_filters():
    x = np.zeros((1, 6, 6, 4), np.float32)
    with pytest.raises(ValueError, match=r"conv2d: the number of filters must be evenly divisible by groups\. "
                                         r"Received: groups=2, filters=3"):
        F.conv2d(x, np.zeros((3, 3, 2, 3), np.float32), groups=2)


@pytest.mark.parametrize("groups", [0, -1, 1.5])
def test_groups_must_be_a_positive_int(groups):
    with pytest.raises(ValueError, match=f"conv2d: groups must be a positive int. Received: groups={groups}"):
        F.conv2d(X, W, groups=groups)


def test_conv2d_layer_checks_groups_at_construction():
    with pytest.raises(ValueError, match=r"The number of filters must be evenly divisible by the number of groups\. "
                                         r"Received: groups=3, filters=8\."):
        nn.Conv2D(filters=8, kernel_size=3, groups=3)


def test_conv2d_layer_checks_groups_against_input_channels_at_build():
    with pytest.raises(ValueError, match=r"input channels must be evenly divisible by the number of groups\. "
                                         r"Received: groups=2, input channels=3"):
        nn.Conv2D(4, 3, groups=2)(st.Tensor(X))


@pytest.mark.parametrize("call", [
    lambda: F.conv2d(X, W, padding="full"),
    lambda: F.max_pool2d(X, 2, padding="SAME_LOWER"),
    lambda: nn.Conv2D(4, 3, padding="full"),
    lambda: nn.MaxPool2D(2, padding="causal"),
], ids=["conv2d", "max_pool2d", "Conv2D", "MaxPool2D"])
def test_unknown_padding_string(call):
    with pytest.raises(ValueError, match=r"padding must be 'valid', 'same', an int or a pair of ints\. Received: padding="):
        call()


def test_padding_is_case_insensitive_and_negative_padding_is_refused():
    assert F.conv2d(X, W, padding="SAME").shape == (2, 8, 8, 4)
    with pytest.raises(ValueError, match=r"padding must be >= 0\. Received: padding=-1"):
        F.conv2d(X, W, padding=-1)


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(stride=0), ValueError, r"stride must be >= 1\. Received: stride=0"),
    (dict(stride=(1, 0)), ValueError, r"stride must be >= 1\. Received: stride=\(1, 0\)"),
    (dict(stride=1.5), TypeError, r"stride must be an int or a pair of ints \(height, width\)\. Received: stride=1.5"),
    (dict(dilation=0), ValueError, r"dilation must be >= 1\. Received: dilation=0"),
    (dict(padding=(1, 2, 3)), TypeError, r"padding must be an int or a pair of ints"),
])
def test_bad_stride_dilation_padding_values(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        F.conv2d(X, W, **kwargs)


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("op", [
    lambda x: F.conv2d(x, W),
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.relu(x),
    lambda x: F.softmax(x),
    lambda x: F.linear(x.reshape(2, -1), np.zeros((192, 2), np.float32)),
], ids=["conv2d", "max_pool2d", "relu", "softmax", "linear"])
def test_integer_input_is_refused_with_a_conversion_hint(op):
    with pytest.raises(TypeError, match=r"x must be a floating-point array \(float32 or float64\)\. Received: "
                                        r"dtype=(int64|uint8)\. Convert with x\.astype\(np\.float32\) \(and scale images to \[0, 1\]\)"):
        op(X.astype(np.uint8))


@pytest.mark.parametrize("call,names", [
    (lambda: F.conv2d(X, W.astype(np.float64)), "x and w"),
    (lambda: F.conv2d(X, W, np.zeros(4)), "x and b"),
    (lambda: F.linear(np.zeros((2, 3), np.float64), np.zeros((3, 2), np.float32)), "x and w"),
    (lambda: F.mse_loss(np.zeros(3, np.float32), np.zeros(3, np.float64)), "pred and target"),
    (lambda: F.concat([X, X.astype(np.float64)]), "all tensors"),
])
def test_dtype_mismatch_float32_vs_float64(call, names):
    with pytest.raises(TypeError, match=f"{names} must have the same dtype \\(striate never upcasts silently\\)\\. "
                                        r"Received: float(32|64) and float(32|64)"):
        call()


def test_non_array_input_is_refused():
    with pytest.raises(TypeError, match="conv2d: w must be a Tensor or a NumPy array. Received: str"):
        F.conv2d(X, "weights")


# --------------------------------------------------------------------------- bias and weight shapes
def test_bias_shape():
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(out_channels,\) = \(4,\)\. Received: b\.shape=\(3,\)"):
        F.conv2d(X, W, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(2,\)\. Received: b\.shape=\(1, 2\)"):
        F.linear(np.zeros((4, 3), np.float32), np.zeros((3, 2), np.float32), np.zeros((1, 2), np.float32))


def test_linear_weight_shape():
    with pytest.raises(ValueError, match=r"linear: w must have shape \(in_features, out_features\) with in_features = "
                                         r"x\.shape\[1\] = 3\. Received: w\.shape=\(4, 2\)"):
        F.linear(np.zeros((2, 3), np.float32), np.zeros((4, 2), np.float32))


def test_batch_norm_parameter_shapes_and_modes():
    g, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"batch_norm: gamma must have shape \(3,\) for 3 channels\. Received: gamma\.shape=\(4,\)"):
        F.batch_norm(X, np.ones(4, np.float32), b, None, None, True)
    with pytest.raises(ValueError, match=r"running_var must have shape \(3,\)"):
        F.batch_norm(X, g, b, np.zeros(3), np.ones(5), True)
    with pytest.raises(ValueError, match="batch_norm: evaluation mode needs running_mean and running_var"):
        F.batch_norm(X, g, b, None, None, False)
    with pytest.raises(ValueError, match=r"training needs more than one value per channel.*x\.shape=\(1, 3\)"):
        F.batch_norm(np.zeros((1, 3), np.float32), g, b, None, None, True)


# --------------------------------------------------------------------------- labels and loss targets
LOGITS = np.zeros((3, 4), np.float32)


def test_labels_of_wrong_length():
    with pytest.raises(ValueError, match=r"cross_entropy: labels must have one entry per row of logits\. "
                                         r"Received: logits\.shape=\(3, 4\), labels\.shape=\(2,\)"):
        F.cross_entropy(LOGITS, np.array([0, 1]))


def test_one_hot_labels_are_refused_with_a_hint():
    with pytest.raises(TypeError, match=r"labels must be integer class indices\. Received: dtype=float64\. "
                                        r"For one-hot or soft targets, convert with labels\.argmax\(axis=1\)"):
        F.cross_entropy(LOGITS, np.eye(3, 4))


@pytest.mark.parametrize("labels,lo,hi", [([0, 1, 4], 0, 4), ([-1, 0, 1], -1, 1)])
def test_labels_out_of_range(labels, lo, hi):
    with pytest.raises(ValueError, match=rf"labels must lie in \[0, 4\) for 4 classes\. Received: min={lo}, max={hi}"):
        F.cross_entropy(LOGITS, np.array(labels))


def test_float_labels():
    with pytest.raises(TypeError, match=r"cross_entropy: labels must be integer class indices\. Received: dtype=float"):
        F.cross_entropy(LOGITS, np.array([0.0, 1.0, 2.0]))


def test_logits_rank_and_label_smoothing_range():
    with pytest.raises(ValueError, match=r"expected logits of shape \(batch, num_classes\), got shape \(12,\)"):
        F.cross_entropy(LOGITS.reshape(-1), np.zeros(12, int))
    with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1\)\. Received: label_smoothing=1.5"):
        F.cross_entropy(LOGITS, np.array([0, 1, 2]), label_smoothing=1.5)


def test_loss_shape_mismatch():
    with pytest.raises(ValueError, match=r"mse_loss: pred and target must have the same shape\. Received: \(3,\) and \(4,\)"):
        F.mse_loss(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: logits and target must have the same shape"):
        F.binary_cross_entropy_with_logits(np.zeros((2, 1), np.float32), np.zeros(2, np.float32))


@pytest.mark.parametrize("rate", [1.0, -0.1, "half"])
def test_dropout_rate_range(rate):
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\)\. Received: rate="):
        F.dropout(X, rate)
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\)"):
        nn.Dropout(rate)


# --------------------------------------------------------------------------- layers
def test_dense_with_4d_input_suggests_flatten():
    with pytest.raises(ValueError, match=r"Dense: expected 2D input \(batch, features\), got shape \(2, 8, 8, 3\)\. "
                                         r"Put a Flatten\(\) layer before it\."):
        nn.Dense(10)(st.Tensor(X))
    built = nn.Dense(10, in_features=192)  # already built: the functional check speaks
    with pytest.raises(ValueError, match=r"linear: expected 2D input \(batch, features\), got shape \(2, 8, 8, 3\)\. "
                                         r"Flatten feature maps first"):
        built(st.Tensor(X))


@pytest.mark.parametrize("layer,arg", [
    (lambda v: nn.Conv2D(v, 3), "filters"),
    (lambda v: nn.Dense(v), "units"),
    (lambda v: nn.Conv2D(4, 3, groups=v), "groups"),
])
@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_layer_sizes_must_be_positive_ints(layer, arg, value):
    with pytest.raises(ValueError, match=f"{arg} must be a positive int. Received: {arg}={value}"):
        layer(value)


@pytest.mark.parametrize("which", ["kernel_initializer", "bias_initializer"])
def test_bad_initializer_name_lists_the_available_ones(which):
    with pytest.raises(ValueError, match=rf"Unknown {which} 'he_nromal'\. Did you mean 'he_normal'\? Available: .*glorot_uniform.*he_normal"):
        nn.Conv2D(4, 3, **{which: "he_nromal"})
    with pytest.raises(ValueError, match=rf"Unknown {which} 'xavier'"):
        nn.Dense(4, **{which: "xavier"})


def test_bad_initializer_type():
    with pytest.raises(TypeError, match=r"kernel_initializer must be a name, a number or a callable\. Received: \[1\]"):
        nn.Dense(4, kernel_initializer=[1])


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"Unknown activation 'rleu'\. Did you mean 'relu'\? Available: .*relu"):
        nn.Conv2D(4, 3, activation="rleu")


def test_sequential_takes_only_modules():
    with pytest.raises(TypeError, match="Sequential takes Modules. Received: layer 1 of type str"):
        nn.Sequential(nn.ReLU(), "relu")


def test_build_needs_positive_shape():
    with pytest.raises(ValueError, match=r"input_shape must be positive ints\. Received: input_shape=\(0, 28, 1\)"):
        nn.Sequential(nn.Conv2D(2, 3)).build((0, 28, 1))


def test_module_subclass_must_call_super_init():
    class Bad(nn.Module):
        def __init__(self):
            self.conv = nn.Conv2D(2, 3)

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) in Bad.__init__"):
        Bad()


# --------------------------------------------------------------------------- state dicts
def _small_model():
    return nn.Sequential(nn.Conv2D(2, 3), nn.BatchNorm(), nn.Flatten(), nn.Dense(2)).build((5, 5, 1))


def test_load_state_dict_missing_keys():
    model = _small_model()
    state = model.state_dict()
    del state["0.b"], state["1.running_var"]
    with pytest.raises(KeyError, match=r"state_dict does not match the model\. Missing keys: \['0\.b', '1\.running_var'\]; "
                                       r"unexpected keys: none\."):
        model.load_state_dict(state)


def test_load_state_dict_unexpected_keys_and_non_strict():
    model = _small_model()
    state = model.state_dict()
    state["head.w"] = np.zeros(2)
    with pytest.raises(KeyError, match=r"Missing keys: none; unexpected keys: \['head\.w'\]"):
        model.load_state_dict(state)
    model.load_state_dict(state, strict=False)  # ignores the extra key


def test_load_state_dict_shape_mismatch_changes_nothing():
    model = _small_model()
    before = model.state_dict()
    state = model.state_dict()
    state["0.b"] = state["0.b"] + 1.0   # a valid update that must NOT be applied...
    state["3.w"] = np.zeros((5, 2))     # ...because this one is wrong
    with pytest.raises(ValueError, match=r"state_dict shape mismatch for '3\.w': the model has \(18, 2\), the state has \(5, 2\)"):
        model.load_state_dict(state)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_into_unbuilt_model_hints_build():
    with pytest.raises(KeyError, match=r"The model has no parameters yet: call model\.build\(input_shape\) first"):
        nn.Sequential(nn.Conv2D(2, 3)).load_state_dict({"0.w": np.zeros((3, 3, 1, 2))})


# --------------------------------------------------------------------------- autograd misuse
def test_requires_grad_on_int_array():
    with pytest.raises(TypeError, match=r"Only floating-point tensors can require gradients\. Received: dtype=int"):
        st.Tensor(np.arange(4), requires_grad=True)


def test_backward_errors():
    x = st.Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(ValueError, match=r"backward\(\) without a gradient needs a single-element tensor"):
        (x * 2.0).backward()
    with pytest.raises(RuntimeError, match=r"backward\(\) was called on a tensor that does not require grad"):
        st.Tensor(np.ones(1)).backward()


def test_conv2d_checks_are_cached_per_combination_but_errors_are_raised_every_time():
    import striate.functional as F
    x, w = np.zeros((1, 5, 5, 2), np.float32), np.zeros((3, 3, 3, 4), np.float32)
    for _ in range(2):  # a failed check caches nothing
        with pytest.raises(ValueError, match="channel mismatch"):
            F.conv2d(x, w)
    ok = np.zeros((3, 3, 2, 4), np.float32)
    assert F.conv2d(x, ok, padding=1).shape == (1, 5, 5, 4)
    assert F.conv2d(x, ok, padding=[0, 1]).shape == (1, 3, 5, 4)     # list settings are hashable
    assert F.conv2d(x[:, :4], ok).shape == (1, 2, 3, 4)               # another shape, another plan
    with pytest.raises(TypeError, match="stride must be an int or a pair"):
        F.conv2d(x, ok, stride={"h": 1})                              # unhashable: checked uncached


def test_pool_checks_are_cached_per_combination_but_errors_are_raised_every_time():
    import striate.functional as F
    x = np.zeros((1, 6, 6, 2), np.float32)
    for _ in range(2):
        with pytest.raises(ValueError, match="padding must not exceed dilation"):
            F.max_pool2d(x, 2, padding=2)
    assert F.max_pool2d(x, 2).shape == (1, 3, 3, 2)
    assert F.max_pool2d(x, [3, 2], stride=[3, 2]).shape == (1, 2, 3, 2)   # lists are fine
    assert F.avg_pool2d(x[:, :4], 2).shape == (1, 2, 3, 2)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        F.max_pool2d(x, {"k": 2})                                           # unhashable: uncached
