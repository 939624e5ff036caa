"""st.summary: rows, totals, MACs, receptive fields (exact through residual and branching graphs)."""
import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import models, nn
from striate.summary import receptive_field
from striate.tensor import Function


def test_lenet5_summary_totals_and_formulas():
    s = st.summary(models.lenet5(), (28, 28, 1))
    assert s.total_params == s.trainable_params == 61_706
    conv1 = s.rows[0]
    assert (conv1.name, conv1.type, conv1.output_shape) == ("features.0", "Conv2D", (28, 28, 6))
    assert conv1.macs == 28 * 28 * 6 * 5 * 5 * 1            # oh * ow * out * kh * kw * cin
    assert conv1.memory == 28 * 28 * 6 * 4                  # float32 bytes of the output
    assert conv1.rf == (5, 5) and conv1.jump == (1, 1)
    dense = [r for r in s.rows if r.type == "Dense"]
    assert [r.macs for r in dense] == [400 * 120, 120 * 84, 84 * 10]
    assert s.total_macs == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 25 * 6 + 400 * 120 + 120 * 84 + 84 * 10
    assert s.total_memory == sum(r.memory for r in s.rows)
    assert s.rows[-1].rf is None and s.rows[-1].rf_note == "global"
    assert s.row("features.3")["params"] == 5 * 5 * 6 * 16 + 16
    text = str(s)
    assert "Total params: 61,706" in text and "features.3" in text and "Share per layer type" in text
    shares = s.by_type()
    assert abs(sum(g["params_share"] for g in shares.values()) - 1) < 1e-9
    assert shares["Dense"]["params"] == 48_120 + 10_164 + 850


def test_alexnet_summary_reproduces_the_seed_table():
    s = st.summary(models.alexnet(rng=0), (224, 224, 3), name="alexnet")
    main = [r for r in s.rows if r.type in ("Conv2D", "MaxPool2D", "Flatten", "Dense")]
    assert [r.output_shape for r in main] == [
        (55, 55, 96), (27, 27, 96), (27, 27, 256), (13, 13, 256), (13, 13, 384), (13, 13, 384), (13, 13, 256),
        (6, 6, 256), (9216,), (4096,), (4096,), (1000,)]
    assert main[0].params == 34_944
    assert [r.params for r in main if r.type == "Conv2D"] == [34_944, 614_656, 885_120, 1_327_488, 884_992]
    pool5 = main[7]
    assert pool5.rf == (195, 195) and pool5.jump == (32, 32)   # Araujo et al. 2019
    assert s.total_params == 62_378_344


def test_vgg16_macs_and_receptive_field():
    s = st.summary(models.vgg16(rng=0), (224, 224, 3))
    assert s.total_params == 138_357_544
    assert abs(s.total_macs / 15.5e9 - 1) < 0.02             # 15.5 G multiply-accumulates
    pool5 = [r for r in s.rows if r.type == "MaxPool2D"][-1]
    assert pool5.output_shape == (7, 7, 512) and pool5.rf == (212, 212)


def test_resnet18_macs():
    s = st.summary(models.resnet18(), (224, 224, 3))
    assert abs(s.total_macs / 1.82e9 - 1) < 0.03             # about 1.8 G
    assert s.total_params == 11_689_512


@pytest.mark.parametrize("stride_in_1x1, expected", [(False, 427), (True, 483)])
def test_resnet50_receptive_field_depends_on_stride_placement(stride_in_1x1, expected):
    s = st.summary(models.resnet50(stride_in_1x1=stride_in_1x1), (224, 224, 3))
    last = [r for r in s.rows if r.rf is not None][-1]
    assert last.name == "layer4.2.relu3" and last.rf == (expected, expected) and last.jump == (32, 32)


def test_resnet20_field_through_option_a_shortcuts_is_the_longest_path():
    s = st.summary(models.resnet20(), (32, 32, 3))
    # the longest path: conv1 and 18 3x3 convs, strides 2 at the first conv of stages 2 and 3
    chain = [(3, 1)] + [(3, 2 if i in (6, 12) else 1) for i in range(18)]
    expected = receptive_field(chain)
    last = [r for r in s.rows if r.rf is not None][-1]
    assert last.rf == (expected.size,) * 2 and last.jump == (4, 4)
    assert not s.notes
    shortcut = s.row("layer2.0.shortcut")
    assert shortcut.output_shape == (16, 16, 32) and shortcut.params == 0


class TwoPaths(nn.Module):
    """A 3x3 path and a 5x5 path, added and concatenated, plus a conv done by hand with F.conv2d."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2D(4, 3, padding=1)
        self.b = nn.Conv2D(4, 5, padding=2, dilation=1)
        self.c = nn.Conv2D(4, 3, padding=2, dilation=2)        # sees 5x5 with 9 weights
        self.w = nn.Parameter(np.zeros((1, 1, 12, 2), np.float32))
        self.head = nn.Sequential(nn.GlobalAvgPool2D(), nn.Dense(3))

    def forward(self, x):
        s = self.a(x) + self.b(x)
        y = F.concat([s, self.c(x), F.relu(self.a(x))], axis=-1)
        y = F.conv2d(y, self.w)                               # a 1x1 conv outside any leaf
        return self.head(y)


def test_branching_model_rows_fields_and_macs():
    model = TwoPaths()
    s = st.summary(model, (9, 9, 3))
    names = [r.name for r in s.rows]
    assert names.count("a") == 2                              # a layer called twice: two rows...
    assert sum(r.params for r in s.rows if r.name == "a") == 3 * 3 * 3 * 4 + 4   # ...parameters once
    assert s.row("c").rf == (5, 5)
    root = s.row("TwoPaths")                                  # owns w and ran the 1x1 conv
    assert root.params == 24 and root.macs == 9 * 9 * 2 * 12
    assert root.rf is None and root.rf_note == "global"
    assert s.total_macs == sum(r.macs for r in s.rows)
    assert s.total_macs == 9 * 9 * 4 * 27 * 2 + 9 * 9 * 4 * 75 + 9 * 9 * 4 * 27 + 9 * 9 * 2 * 12 + 2 * 3
    assert s.total_params == model.num_parameters()


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(2, 3, padding=1)
        self.down = nn.Conv2D(2, 3, stride=2, padding=1)
        self.after = nn.Conv2D(2, 3, padding=1)

    def forward(self, x):
        y = x + self.conv(x)                    # field 3: the union of 1 (identity) and 3
        return self.after(self.down(y))                                    # 3 + 2 -> 5, jump 2; + 2*2 -> 9


def test_residual_add_takes_the_union_of_fields():
    s = st.summary(Residual(), (8, 8, 2))
    assert s.row("down").rf == (5, 5) and s.row("down").jump == (2, 2)
    assert s.row("after").rf == (9, 9)
    assert receptive_field([(3, 1), (3, 2), (3, 1)]).size == 9


def test_summary_restores_the_model_and_the_engine():
    model = models.digits_cnn(rng=0)
    bn = model.features[1]
    before = bn.running_mean.copy()
    apply = Function.apply
    model.train()
    model.features.freeze()
    s = st.summary(model, (8, 8, 1))
    assert model.training and Function.apply is apply
    assert "forward" not in model.features[0].__dict__
    np.testing.assert_array_equal(bn.running_mean, before)
    assert s.frozen_params == model.features.num_parameters() and s.trainable_params == 64 * 10 + 10
    assert "*" in str(s)
    with pytest.raises(ValueError):
        st.summary(models.lenet5(), (4, 4, 1))
    assert Function.apply is apply                        # restored after an error too


def test_too_small_input_names_the_layer():
    with pytest.raises(ValueError, match=r"input 6x6x1 is too small for LeNet5: at layer features\.3 \(Conv2D\)"):
        st.summary(models.lenet5(), (6, 6, 1))


def test_channel_mismatch_names_the_layer():
    with pytest.raises(ValueError, match=r"lenet5 failed on input 28x28x3 at layer features\.0 \(Conv2D\)"):
        st.summary(models.lenet5(), (28, 28, 3), name="lenet5")


def test_receptive_field_recurrence():
    assert receptive_field([(3, 1)] * 3).size == 7             # three stacked 3x3 convs see 7x7
    # after a stride-2 layer the jump is 2: 3 + (3 - 1) * 2 = 7, not the tutorial 3 + (3 - 1) * 1 = 5
    assert receptive_field([(3, 2), (3, 1)]) == (7, 2, 0)
    assert receptive_field([(3, 1, 2)]).size == 5             # dilation 2
    assert receptive_field([(3, 1, 1, 1)]).start == -1         # padding 1: the window starts in the pad
    alex = receptive_field([(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)], per_layer=True)
    assert [f.size for f in alex] == [11, 19, 51, 67, 99, 131, 163, 195]
    with pytest.raises(ValueError, match="stride"):
        receptive_field([(3, 0)])


def test_summary_rejects_non_modules():
    with pytest.raises(TypeError, match="Module"):
        st.summary(lambda x: x, (8, 8, 1))
    with pytest.raises(ValueError, match="input_shape"):
        st.summary(models.lenet5(), (28, 28, -1))


def test_package_names_are_reachable_from_st_summary():
    assert st.summary.receptive_field([(3, 1)] * 3).size == 7
    assert st.summary.calc.conv_arithmetic(28, kernel_size=5).output_size == (24, 24)
    import striate.summary as package_or_function  # either way the helpers are there
    assert package_or_function.receptive_field is receptive_field


# --------------------------------------------------------------------------- upsampling layers
def _measured_field(model, shape):
    """Largest row extent of the input pixels that reach one output unit, found by backpropagation
    through the model with positive weights (so nothing cancels), and the jump between the first
    pixels of neighbouring interior units."""
    for p in model.parameters():
        p.data[...] = 1.0
    h = shape[0]
    extents, firsts = {}, {}
    out_h = model(st.Tensor(np.zeros((1,) + shape))).shape[1]
    for row in range(out_h):
        x = st.Tensor(np.random.default_rng(0).uniform(0.5, 1.0, (1,) + shape), requires_grad=True)
        y = model(x)
        mask = np.zeros(y.shape)
        mask[0, row, :, 0] = 1.0  # a whole row of units: their fields span the same input rows
        (y * st.Tensor(mask)).sum().backward()
        rows = np.flatnonzero(np.abs(x.grad[0]).sum(axis=(1, 2)) > 0)
        if len(rows) and 0 < rows[0] and rows[-1] < h - 1:  # a unit whose field lies inside the image
            extents[row], firsts[row] = rows[-1] - rows[0] + 1, rows[0]
    return max(extents.values()), extents, firsts


@pytest.mark.parametrize("layers", [
    [nn.Conv2D(1, 3, stride=2, padding=1), nn.ConvTranspose2D(1, 4, stride=2, padding=1)],
    [nn.Conv2D(1, 3, stride=2, padding=1), nn.Conv2D(1, 3, stride=2, padding=1), nn.ConvTranspose2D(1, 3, stride=2)],
    [nn.Conv2D(1, 3, stride=4, padding=1), nn.ConvTranspose2D(1, 2, stride=4)],   # stride > kernel: gaps
    [nn.Conv2D(1, 3, stride=2, padding=1), nn.ConvTranspose2D(1, 3, stride=2, dilation=2, padding=2)],
    [nn.Conv2D(1, 3, stride=2, padding=1), nn.Upsample(scale_factor=2)],
    [nn.Conv2D(1, 3, stride=2, padding=1), nn.Upsample(scale_factor=2, mode="bilinear")],
    [nn.MaxPool2D(2), nn.Upsample(scale_factor=3, mode="bilinear"), nn.Conv2D(1, 3, padding=1)],
    [nn.Upsample(scale_factor=2), nn.Conv2D(1, 3, padding=1)],                   # below the input's grid
    [nn.Upsample(scale_factor=3, mode="bilinear"), nn.Conv2D(1, 5, padding=2), nn.MaxPool2D(2)],
])
def test_upsampling_layers_carry_the_union_of_the_fields_they_read(layers):
    model = nn.Sequential(*layers)
    shape = (24, 24, 1)
    s = st.summary(model, shape)
    last = s.rows[-1]
    assert last.rf_note == "" and last.rf is not None, str(s)
    expected, _, _ = _measured_field(model.astype(np.float64), shape)
    if all(r.jump[0] >= 1 for r in s.rows):
        assert last.rf[0] == expected, str(s)
    else:  # below the input's grid, units differ by a pixel: the field is the largest, rounded up
        assert expected <= last.rf[0] <= expected + 1, str(s)


def test_upsampling_jumps_are_fractions_and_a_unet_like_path_returns_to_jump_one():
    from fractions import Fraction

    model = nn.Sequential(nn.Conv2D(2, 3, padding=1), nn.MaxPool2D(2), nn.Conv2D(2, 3, padding=1), nn.MaxPool2D(2),
                          nn.ConvTranspose2D(2, 2, stride=2), nn.ConvTranspose2D(2, 2, stride=2),
                          nn.Upsample(scale_factor=2), nn.Conv2D(1, 1))
    s = st.summary(model, (16, 16, 1))
    jumps = [r.jump[0] for r in s.rows]
    assert jumps == [1, 2, 2, 4, 2, 1, Fraction(1, 2), Fraction(1, 2)]
    assert isinstance(s.rows[4].jump[0], int)          # whole numbers stay ints
    assert "1/2" in str(s) and "unknown" not in str(s)
    # pool2 sees 3 + 1 + 2 * 2 + 2 = 10 pixels; each 2x2/2 transposed conv reads one input unit
    assert [r.rf[0] for r in s.rows] == [3, 4, 8, 10, 10, 10, 10, 10]


class TwoHeads(nn.Module):
    """A model with two outputs, as a tuple or as a dict."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.as_dict = as_dict
        self.conv = nn.Conv2D(4, 3, padding=1)
        self.flat = nn.Flatten()
        self.cls = nn.Dense(3)
        self.box = nn.Dense(4)

    def forward(self, x):
        h = self.flat(self.conv(x))
        out = (self.cls(h), self.box(h))
        return {"logits": out[0], "box": out[1]} if self.as_dict else out


@pytest.mark.parametrize("as_dict", [False, True])
def test_models_with_several_outputs_are_summarised(as_dict):
    s = st.summary(TwoHeads(as_dict), (6, 6, 1))
    assert [r.name for r in s.rows] == ["conv", "flat", "cls", "box"]
    assert s.row("cls").output_shape == (3,) and s.row("box").output_shape == (4,)
    assert s.total_params == (9 * 4 + 4) + (144 * 3 + 3) + (144 * 4 + 4)
    assert s.row("conv").rf == (3, 3) and s.row("box").rf_note == "global"
