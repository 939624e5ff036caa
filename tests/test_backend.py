"""Every fast strategy of striate.backend against its op's reference (striate.backend.reference_only).

The reference of each op is the short forward and backward in striate/ops; the strategies split
the batch over threads, cut it into cache blocks, run compiled loops or the planar direct conv.
Both must give the same numbers (float64, to rounding), on small inputs forced to split
(`split_everything`) and with the compiled loops on and off.
"""
import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import backend

CONV_CASES = [  # x shape, (kh, kw), filters, keyword arguments
    ((2, 7, 6, 3), (3, 3), 4, dict(padding=1)),
    ((3, 9, 8, 4), (3, 2), 6, dict(stride=2, padding=(1, 0))),
    ((2, 9, 9, 2), (3, 3), 3, dict(dilation=2, padding="same")),
    ((2, 8, 8, 4), (3, 3), 6, dict(groups=2, padding=1)),
    ((2, 6, 6, 4), (1, 1), 4, dict(groups=4)),
    ((3, 12, 12, 1), (5, 5), 6, dict(padding=2)),           # planar (few channels, stride 1)
    ((2, 10, 10, 6), (5, 5), 16, dict()),
    ((1, 5, 5, 3), (3, 3), 2, dict(stride=3, padding=2)),
    ((3, 14, 14, 6), (5, 5), 16, dict()),                   # LeNet-5's conv2: 300 rows, thin GEMMs in pieces
    ((2, 6, 5, 24), (1, 1), 20, dict()),                    # 1x1: the input's pixels are the patches
    ((2, 5, 6, 24), (1, 1), 20, dict(padding=1)),           # 1x1 on the padded input
    ((2, 6, 6, 24), (1, 1), 20, dict(stride=2)),            # 1x1 strided: copied patches
]


def _conv(xs, k, o, kwargs, seed=0):
    rng = np.random.default_rng(seed)
    g = kwargs.get("groups", 1)
    x = st.Tensor(rng.standard_normal(xs), requires_grad=True)
    w = st.Tensor(rng.standard_normal(k + (xs[3] // g, o)), requires_grad=True)
    b = st.Tensor(rng.standard_normal(o), requires_grad=True)
    y = F.conv2d(x, w, b, **kwargs)
    y.backward(np.random.default_rng(seed + 1).standard_normal(y.shape))
    return [y.data, x.grad, w.grad, b.grad]


def _compare(run, tol=1e-10):
    with backend.reference_only():
        expected = run()
    got = run()
    assert len(got) == len(expected)
    for a, e in zip(got, expected):
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol)


@pytest.mark.parametrize("m, n", [(300, 16), (256, 6), (100, 16), (300, 17)])
def test_thin_products_in_pieces_equal_one_gemm(m, n):
    from striate.backend.conv import ROW_PIECE, THIN_COLUMNS, thin_dot, thin_dot_tn
    assert (ROW_PIECE, THIN_COLUMNS) == (128, 16)  # (300, 16): two pieces and 44 rows; (100, 16): one GEMM
    rng = np.random.default_rng(9)
    a, b, g = rng.standard_normal((m, 30)), rng.standard_normal((30, n)), rng.standard_normal((m, n))
    np.testing.assert_allclose(thin_dot(a, b, np.empty((m, n))), a @ b, rtol=1e-12)
    np.testing.assert_allclose(thin_dot_tn(a, g), a.T @ g, rtol=1e-12)
    at = np.asfortranarray(a)  # (not C-contiguous: one GEMM)
    np.testing.assert_allclose(thin_dot_tn(at, g), a.T @ g, rtol=1e-12)


CONV_TRANSPOSE_CASES = [  # x shape, (kh, kw), output channels, keyword arguments
    ((2, 5, 6, 6), (4, 4), 3, dict(stride=2, padding=1)),                         # the detector's upsampling
    ((2, 5, 5, 4), (3, 3), 5, dict(stride=2, padding=1, output_padding=1)),
    ((3, 4, 5, 3), (3, 2), 4, dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(1, 2))),
    ((2, 6, 6, 4), (3, 3), 6, dict(stride=1, padding=1)),                         # stride 1: a conv backward
    ((2, 7, 7, 2), (5, 5), 1, dict(stride=1, padding=2)),
    ((2, 3, 4, 4), (3, 2), 4, dict(stride=1, padding=1, output_padding=1, dilation=2)),  # rows past the windows
    ((2, 4, 4, 4), (4, 4), 6, dict(stride=2, padding=(0, 1, 1, 0), groups=2)),
    ((2, 3, 4, 8), (2, 2), 8, dict(stride=2, groups=8)),                          # depthwise
]


def _conv_transpose(xs, k, c_out, kwargs, needs=(True, True, True), seed=0):
    rng = np.random.default_rng(seed)
    g = kwargs.get("groups", 1)
    x = st.Tensor(rng.standard_normal(xs), requires_grad=needs[0])
    w = st.Tensor(rng.standard_normal(k + (c_out // g, xs[3])), requires_grad=needs[1])  # (kh, kw, c_out/g, c_in)
    b = st.Tensor(rng.standard_normal(c_out), requires_grad=needs[2])
    y = F.conv_transpose2d(x, w, b, **kwargs)
    y.backward(np.random.default_rng(seed + 1).standard_normal(y.shape))
    return [y.data] + [t.grad for t, need in zip((x, w, b), needs) if need]


# (op, x shape, kernel, output channels, keyword arguments): the conv and the transposed conv
BOTH_CONV_CASES = [(_conv, *case) for case in CONV_CASES] + [(_conv_transpose, *case) for case in CONV_TRANSPOSE_CASES]


@pytest.mark.parametrize("op, xs, k, o, kwargs", BOTH_CONV_CASES)
def test_conv_fast_paths_equal_the_reference(op, xs, k, o, kwargs, compiled_loops):
    _compare(lambda: op(xs, k, o, kwargs))


@pytest.mark.parametrize("op, xs, k, o, kwargs", BOTH_CONV_CASES)
def test_conv_split_into_parts_and_blocks_equals_the_reference(op, xs, k, o, kwargs, split_everything):
    _compare(lambda: op(xs, k, o, kwargs))


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False), (False, False, True)])
def test_conv_transpose_fast_path_gives_only_the_gradients_asked_for(needs):
    xs, k, c_out, kwargs = CONV_TRANSPOSE_CASES[0]
    _compare(lambda: _conv_transpose(xs, k, c_out, kwargs, needs))


def test_conv_transpose_takes_the_fast_path_outside_reference_only():
    calls = []
    real = backend.conv.FastConvTranspose.forward
    try:
        backend.conv.FastConvTranspose.forward = lambda self, *a, **k: calls.append(1) or real(self, *a, **k)
        with backend.reference_only():
            _conv_transpose((1, 3, 3, 2), (2, 2), 2, dict(stride=2))
        assert calls == []
        _conv_transpose((1, 3, 3, 2), (2, 2), 2, dict(stride=2))
        assert calls
    finally:
        backend.conv.FastConvTranspose.forward = real


def _softmaxes(shape, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 30  # spread rows: the shift by each row's max matters
    x[0, 0, 1] = 1e4                      # one huge logit: its row is one-hot
    x[1, 1, 0] = np.nan                   # NaN makes its row NaN, on both paths
    x[1, 2, 3] = -np.inf                  # -inf: probability 0
    out = []
    for fn in (F.softmax, F.log_softmax):
        t = st.Tensor(x.copy(), requires_grad=True)
        y = fn(t)
        y.backward(np.random.default_rng(seed + 1).standard_normal(y.shape))
        out += [y.data, t.grad]
    z = st.Tensor(x[2:].reshape(-1, shape[-1]), requires_grad=True)
    labels = np.random.default_rng(seed + 2).integers(0, shape[-1], len(z))
    labels[::5] = 255
    loss = F.cross_entropy(z, labels, ignore_index=255)
    loss.backward()
    return out + [loss.data, z.grad]


@pytest.mark.parametrize("shape", [(3, 4, 5, 11), (4, 3, 7, 2)])
def test_softmax_fast_paths_equal_the_reference(shape, compiled_loops, split_everything):
    with np.errstate(invalid="ignore"):
        _compare(lambda: _softmaxes(shape), tol=1e-12)


def _concat(seed=5):
    rng = np.random.default_rng(seed)
    xs = [st.Tensor(rng.standard_normal((5, 4, 3, c)), requires_grad=True) for c in (2, 3, 1)]
    y = F.concat(xs, axis=-1)
    y.backward(rng.standard_normal(y.shape))
    return [y.data] + [x.grad for x in xs]


def test_concat_split_over_threads_equals_the_reference(split_everything):
    _compare(_concat, tol=0)


def _conv_bn_relu(c_in, seed=7):
    """An evaluation-mode conv, batch norm and ReLU (one fused conv) on images of c_in channels."""
    rng = np.random.default_rng(seed)
    model = st.nn.Sequential(st.nn.Conv2D(16, 5, padding=2, rng=seed), st.nn.BatchNorm(), st.nn.ReLU())
    x = rng.standard_normal((3, 28, 28, c_in))
    model(st.Tensor(x))  # builds the layers (and moves the running statistics)
    bn = model[1]
    bn.running_mean[:] = rng.standard_normal(16)
    bn.running_var[:] = rng.random(16) + 0.5
    bn.gamma.data[:] = rng.standard_normal(16)
    model.eval()
    with st.no_grad():
        return [model(st.Tensor(x)).data]


@pytest.mark.parametrize("c_in, planar", [(1, True), (24, False)])  # few channels: planar; else im2col + GEMM
def test_fused_conv_batch_norm_relu_fast_paths_equal_the_reference(c_in, planar, compiled_loops, monkeypatch):
    calls = []
    real = backend.planar.PlanarConv.forward
    monkeypatch.setattr(backend.planar.PlanarConv, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = _conv_bn_relu(c_in)[0]
    assert (out == 0).mean() > 0.2 and (out > 0).mean() > 0.2  # the ReLU cut some outputs, not all
    assert bool(calls) == (planar and compiled_loops)
    _compare(lambda: _conv_bn_relu(c_in))


def test_reference_conv_runs_on_the_reference_path_only():
    calls = []
    real = backend.conv.FastConv.forward
    try:
        backend.conv.FastConv.forward = lambda self, *a, **k: calls.append(1) or real(self, *a, **k)
        with backend.reference_only():
            _conv((1, 5, 5, 2), (3, 3), 2, {})
        assert calls == []
        _conv((1, 5, 5, 2), (3, 3), 2, {})
        assert calls, "NumPy arrays take the fast path outside reference_only()"
    finally:
        backend.conv.FastConv.forward = real


def _pool(relu, seed=2):
    rng = np.random.default_rng(seed)
    x = st.Tensor(rng.standard_normal((4, 9, 8, 3)), requires_grad=True)
    y = (F.relu_max_pool2d if relu else F.max_pool2d)(x, 3, 2, 1)
    y.backward(np.random.default_rng(seed + 1).standard_normal(y.shape))
    return [y.data, x.grad]


@pytest.mark.parametrize("relu", [False, True])
def test_max_pool_fast_paths_equal_the_reference(relu, compiled_loops, split_everything):
    _compare(lambda: _pool(relu))  # (overlapping windows add in another order: rounding only)


def _relu_bn(training, seed=4):
    rng = np.random.default_rng(seed)
    x = st.Tensor(rng.standard_normal((6, 5, 4, 3)) * 3 + 2, requires_grad=True)
    g, b = (st.Tensor(rng.standard_normal(3), requires_grad=True) for _ in range(2))
    rm, rv = np.zeros(3), np.ones(3)
    y = F.relu(F.batch_norm(x, g, b, rm, rv, training=training))
    y.backward(np.random.default_rng(seed + 1).standard_normal(y.shape))
    return [y.data, x.grad, g.grad, b.grad, rm, rv]


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_and_relu_fast_paths_equal_the_reference(training, compiled_loops, split_everything):
    _compare(lambda: _relu_bn(training))


def test_im2col_and_col2im_are_exact_adjoints():
    from striate.ops.geometry import col2im, im2col
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 7, 6, 3))
    cols = im2col(x, (3, 2), (2, 1), (1, 2), (3, 4))
    p = rng.standard_normal(cols.shape)
    # <im2col(x), p> == <x, col2im(p)>
    np.testing.assert_allclose(np.sum(cols * p), np.sum(x * col2im(p, x.shape, (3, 2), (2, 1), (1, 2), (3, 4))),
                               rtol=1e-12)


def test_import_and_a_training_step_leave_blas_threads_and_malloc_alone():
    # a fresh process: BLAS's thread count before `import striate` equals the one after a model's
    # forward and backward, and glibc's malloc was not tuned (only the CLI and benchmarks ask)
    pytest.importorskip("threadpoolctl")
    import os
    import subprocess
    import sys
    code = (
        "import numpy as np, threadpoolctl\n"
        "def blas(): return {l['filepath']: l['num_threads'] for l in threadpoolctl.threadpool_info()\n"
        "                    if l['user_api'] == 'blas'}\n"
        "before = blas()\n"
        "import striate as st, striate.functional as F\n"
        "st.set_num_threads(2)\n"
        "model = st.models.lenet5(rng=0)\n"
        "x = st.Tensor(np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32))\n"
        "F.cross_entropy(model(x), np.arange(8) % 10).backward()\n"
        "import striate.backend.memory as m\n"
        "after = blas()\n"
        "print(all(after[k] == n for k, n in before.items()) and len(before) > 0, m.is_applied(), before, after)\n")
    env = dict(os.environ, STRIATE_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    same, applied = out.stdout.split()[:2]
    assert same == "True", out.stdout
    assert applied == "False", out.stdout
