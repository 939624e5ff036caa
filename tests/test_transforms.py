"""Transforms: each effect checked against explicit slicing / linear algebra; determinism by seed."""
import numpy as np
import pytest

from striate.data import transforms as T


def _batch(n=16, h=8, w=7, c=3, seed=0):
    # Distinct values in (0.1, 1): every window of an image is unique, and none looks like zero padding.
    return np.random.default_rng(seed).uniform(0.1, 1.0, (n, h, w, c)).astype(np.float32)


# -------------------------------------------------------------------------------------------- flip
def test_flip_flips_exactly_the_chosen_images():
    x = _batch(64)
    out = T.RandomHorizontalFlip(p=0.5)(x, np.random.default_rng(1))
    flipped = np.array([np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)])
    kept = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert np.all(flipped ^ kept)  # each image is exactly one of the two
    assert 15 < flipped.sum() < 49
    # and the whole batch agrees with x[:, :, ::-1] on exactly the flipped ones
    np.testing.assert_array_equal(out[flipped], x[:, :, ::-1][flipped])
    np.testing.assert_array_equal(out[~flipped], x[~flipped])


def test_flip_probability_extremes_and_input_untouched():
    x = _batch(8)
    before = x.copy()
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(x, 0), x)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x, 0), x[:, :, ::-1])
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match="p must be a probability"):
        T.RandomHorizontalFlip(p=1.5)


# -------------------------------------------------------------------------------------------- crop
@pytest.mark.parametrize("size,padding", [(5, 0), ((6, 4), 2), (8, 3)])
def test_random_crop_is_a_window_of_the_padded_input(size, padding):
    x = _batch(24, 8, 7, 2)
    out = T.RandomCrop(size, padding=padding)(x, np.random.default_rng(2))
    ch, cw = (size, size) if isinstance(size, int) else size
    assert out.shape == (24, ch, cw, 2) and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    offsets = []
    for n in range(len(x)):  # search every offset: the test does not assume how offsets are drawn
        hits = [(i, j) for i in range(padded.shape[1] - ch + 1) for j in range(padded.shape[2] - cw + 1)
                if np.array_equal(out[n], padded[n, i:i + ch, j:j + cw])]
        assert len(hits) == 1
        offsets.append(hits[0])
    if padded.shape[1] - ch + padded.shape[2] - cw > 2:
        assert len(set(offsets)) > 3  # offsets differ per image


def test_random_crop_rejects_too_large():
    with pytest.raises(ValueError, match="Crop size \\(9, 9\\) is larger"):
        T.RandomCrop(9)(_batch(2), 0)


# ------------------------------------------------------------------------------------- PCA lighting
def test_pca_lighting_shift_along_principal_axes():
    rng = np.random.default_rng(3)
    # Correlated colours so the covariance has distinct eigenvalues.
    mix = np.array([[1.0, 0.5, 0.2], [0.0, 0.6, 0.3], [0.0, 0.0, 0.2]])
    x = np.clip(rng.normal(0.5, 0.1, (40, 6, 6, 3)) @ mix, 0, 1).astype(np.float32)
    t = T.PCALighting(alphastd=0.1).fit(x)
    cov = np.cov(x.reshape(-1, 3).astype(np.float64), rowvar=False, bias=True)
    lam, vec = np.linalg.eigh(cov)
    np.testing.assert_allclose(t.eigval, lam, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(np.abs(t.eigvec.T @ vec), np.eye(3), atol=1e-6)  # same axes up to sign

    out = t(x, np.random.default_rng(4))
    shift = (out - x).astype(np.float64)                                   # (N, H, W, 3)
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1, :1], shift.shape), atol=1e-6)  # per image
    s = shift[:, 0, 0]                                                     # (N, 3)
    alpha_lambda = s @ vec                                                 # coordinates on the axes p_i
    alpha = alpha_lambda / lam                                             # alpha_i ~ N(0, 0.1)
    assert np.std(alpha) == pytest.approx(0.1, rel=0.35)
    assert np.all(np.abs(alpha) < 0.6)
    assert len(np.unique(np.round(alpha[:, 2], 6))) == len(x)             # drawn per image


def test_pca_lighting_zero_std_is_identity_and_needs_rgb():
    x = _batch(4)
    t = T.PCALighting(alphastd=0.0).fit(x)
    np.testing.assert_array_equal(t(x, 0), x)
    with pytest.raises(ValueError, match="3 channels"):
        T.PCALighting().fit(_batch(2, c=1))
    with pytest.raises(ValueError, match="fit"):
        T.PCALighting()(x, 0)


# -------------------------------------------------------------------------------- centre and 10-crop
def test_center_crop():
    x = _batch(3, 8, 7, 1)
    np.testing.assert_array_equal(T.CenterCrop((4, 3))(x), x[:, 2:6, 2:5])
    np.testing.assert_array_equal(T.CenterCrop(5)(x), x[:, 1:6, 1:6])


def test_ten_crop_matches_explicit_slices():
    x = _batch(2, 9, 8, 3)
    out = T.TenCrop(5)(x)
    assert out.shape == (10, 2, 5, 5, 3)
    expected = [x[:, 0:5, 0:5], x[:, 0:5, 3:8], x[:, 4:9, 0:5], x[:, 4:9, 3:8], x[:, 2:7, 1:6]]
    for k, e in enumerate(expected):
        np.testing.assert_array_equal(out[k], e)
        np.testing.assert_array_equal(out[5 + k], e[:, :, ::-1])


# ------------------------------------------------------------------------------------- standardize
def test_standardize_zero_mean_unit_std_on_training_set():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (30, 5, 5, 3)).astype(np.uint8)
    x[..., 1] //= 4  # channels with different statistics
    t = T.Standardize().fit(x)
    np.testing.assert_allclose(t.mean, (x / 255.0).mean(axis=(0, 1, 2)), rtol=1e-12)
    out = t((x / 255.0).astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-4)


def test_standardize_given_stats_and_errors():
    x = _batch(2, c=2)
    out = T.Standardize(mean=[0.5, 0.25], std=[2.0, 4.0])(x)
    np.testing.assert_allclose(out[..., 1], (x[..., 1] - 0.25) / 4.0, rtol=1e-5)
    with pytest.raises(ValueError, match="fit\\(x_train\\)"):
        T.Standardize()(x)
    with pytest.raises(ValueError, match="Expected 4D input"):
        T.Standardize(0.0, 1.0)(x[0])


# ------------------------------------------------------------------------------ compose, determinism
def test_compose_same_seed_same_output_and_different_seed_differs():
    x = _batch(32, 10, 10, 3)
    t = T.Compose([T.RandomCrop(8, padding=1), T.RandomHorizontalFlip(), T.PCALighting(0.1).fit(x)])
    a = t(x, np.random.default_rng(7))
    b = t(x, np.random.default_rng(7))
    c = t(x, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (32, 8, 8, 3) and a.dtype == np.float32
    assert "RandomCrop" in repr(t)


def test_resize_images_matches_pillow_on_upsampling():
    Image = pytest.importorskip("PIL.Image")
    x = np.random.default_rng(9).integers(0, 256, (3, 6, 5, 1)).astype(np.uint8)
    out = T.resize_images(x, (15, 11))
    assert out.shape == (3, 15, 11, 1) and out.dtype == np.uint8
    for n in range(3):
        ref = np.asarray(Image.fromarray(x[n, :, :, 0]).resize((11, 15), Image.BILINEAR))
        assert np.abs(out[n, :, :, 0].astype(int) - ref).max() <= 1
    np.testing.assert_array_equal(T.resize_images(x, (6, 5)), x)
