"""Conv arithmetic calculator: sizes, pads, fields, and explanations of impossible settings."""
import pytest

from striate.summary.calc import conv_arithmetic


def test_single_layer_output_size_and_pads():
    r = conv_arithmetic(224, kernel_size=11, stride=4, padding=2)
    g = r.layers[0]
    assert r.ok and g.output_size == (55, 55) and g.pads == (2, 2, 2, 2) and g.rf == (11, 11)
    assert r.output_size == (55, 55)


def test_same_padding_is_asymmetric_with_the_extra_row_bottom_right():
    # 'same': out = ceil(8 / 2) = 4; total pad = (4 - 1) * 2 + 3 - 8 = 1 -> (0 top, 1 bottom)
    g = conv_arithmetic(8, [dict(kernel=3, stride=2, padding="same")]).layers[0]
    assert g.output_size == (4, 4) and g.pads == (0, 1, 0, 1)
    r = conv_arithmetic((7, 8), [dict(kernel=3, stride=2, padding="same")])
    assert r.layers[0].output_size == (4, 4) and r.layers[0].pads == (1, 1, 0, 1)
    assert any("asymmetric" in n for n in r.notes())


def test_chain_fields_and_jumps():
    r = conv_arithmetic(224, [(11, 4, 2), (3, 2), (5, 1, 2), (3, 2)])
    assert [g.output_size[0] for g in r.layers] == [55, 27, 27, 13]
    assert [g.rf[0] for g in r.layers] == [11, 19, 51, 67]
    assert [g.jump[0] for g in r.layers] == [4, 8, 8, 16]
    assert r.layers[0].start == (-2, -2)
    assert "Output: 13x13" in str(r)


def test_dilation_and_rectangular_kernels():
    g = conv_arithmetic((10, 12), [dict(kernel=(3, 1), dilation=(2, 1))]).layers[0]
    assert g.effective_kernel == (5, 1) and g.output_size == (6, 12) and g.rf == (5, 1)


def test_pixels_dropped_by_floor_division_are_reported():
    r = conv_arithmetic(8, [dict(kernel=3, stride=2)])   # windows at 0, 2, 4: rows 7 never seen
    assert r.layers[0].output_size == (3, 3) and r.layers[0].unused == (1, 1)
    assert any("last 1 input rows are never seen" in n for n in r.notes())


def test_impossible_settings_are_explained_not_raised():
    r = conv_arithmetic(5, [dict(kernel=3), dict(kernel=3, dilation=2)])
    assert not r.ok and len(r.layers) == 1 and r.output_size is None
    assert r.error.startswith("layer 2:") and "effective size 5x5" in r.error and "3x3" in r.error
    assert "Impossible: layer 2" in str(r)
    for bad, word in [(dict(kernel=3, stride=0), "stride"), (dict(kernel=3, padding=-1), "padding"),
                      (dict(kernel=0), "kernel"), (dict(kernel=3, padding="full"), "padding"),
                      (dict(kernel=3, size=2), "unknown keys")]:
        r = conv_arithmetic(9, [bad])
        assert not r.ok and word in r.error and r.error.startswith("layer 1:"), r.error


def test_needs_a_layer():
    with pytest.raises(ValueError, match="kernel_size"):
        conv_arithmetic(9)
