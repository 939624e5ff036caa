"""Generate the golden fixtures of tests/test_golden.py with PyTorch (CPU) as the oracle.

Each case is one small ``.npz`` in ``tests/golden/`` holding

* ``meta``: JSON text ``{"op", "kwargs", "inputs", "consts", "dtype", "torch"}``;
* ``in_<name>``: differentiable inputs, in striate's layouts (NHWC activations, HWIO weights);
* ``const_<name>``: non-differentiable inputs (labels, running statistics before the call);
* ``gy``: the random cotangent pulled back through the output;
* ``out``: the forward result, ``grad_<name>``: the gradient of ``sum(out * gy)`` per input;
* ``after_<name>``: state after the call (batch norm's running statistics).

The test compares striate against these files without importing torch, so the suite keeps an
independent reference on machines that do not have it.

Usage::

    python scripts/make_golden.py            # writes tests/golden/*.npz
    python scripts/make_golden.py --out DIR
    python scripts/make_golden.py --only max_unpool2d dice_loss   # only the cases of these ops
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from striate.atomic import atomic_open

try:
    import torch
    import torch.nn.functional as TF
except ImportError as exc:  # pragma: no cover - a developer tool
    raise SystemExit("make_golden.py needs PyTorch: pip install torch==2.13.0 (CPU build)") from exc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from torch_layout import explicit_pads, nchw, nhwc, oihw  # noqa: E402


# --------------------------------------------------------------------------- layout helpers
def pads_of(padding, hw, kernel, stride, dilation=(1, 1)):
    """(left, right, top, bottom) for torch's F.pad."""
    top, bottom, left, right = explicit_pads(padding, hw, kernel, stride, dilation)
    return left, right, top, bottom


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# --------------------------------------------------------------------------- torch references
def t_conv2d(t, c, kw):
    x, w, b = t["x"], t["w"], t.get("b")
    kh, kwid = w.shape[0], w.shape[1]
    stride, dilation = pair(kw.get("stride", 1)), pair(kw.get("dilation", 1))
    pads = pads_of(kw.get("padding", 0), x.shape[1:3], (kh, kwid), stride, dilation)
    y = TF.conv2d(TF.pad(nchw(x), pads), oihw(w), b, stride=stride, dilation=dilation, groups=kw.get("groups", 1))
    return nhwc(y)


def _pool(kind):
    def ref(t, c, kw):
        x = t["x"]
        kernel = pair(kw["kernel_size"])
        stride = kernel if kw.get("stride") is None else pair(kw["stride"])
        pads = pads_of(kw.get("padding", 0), x.shape[1:3], kernel, stride)
        if kind == "relu_max":  # the reference is the unfused pair
            return nhwc(TF.max_pool2d(TF.pad(TF.relu(nchw(x)), pads, value=-math.inf), kernel, stride))
        if kind == "max":
            return nhwc(TF.max_pool2d(TF.pad(nchw(x), pads, value=-math.inf), kernel, stride))
        return nhwc(TF.avg_pool2d(TF.pad(nchw(x), pads), kernel, stride))  # padded zeros count
    return ref


def t_batch_norm(t, c, kw):
    x = t["x"]
    to, back = (nchw, nhwc) if x.ndim == 4 else ((lambda v: v), (lambda v: v))
    y = TF.batch_norm(to(x), c["running_mean"], c["running_var"], t["gamma"], t["beta"], kw["training"],
                      kw.get("momentum", 0.1), kw.get("eps", 1e-5))
    return back(y)


def t_cross_entropy(t, c, kw):
    z = t["logits"]
    z = z.permute(0, 3, 1, 2) if z.ndim == 4 else z  # torch puts the classes on axis 1
    weight = None if kw.get("weight") is None else torch.tensor(kw["weight"], dtype=z.dtype)
    return TF.cross_entropy(z, torch.tensor(c["labels"]), weight=weight, label_smoothing=kw.get("label_smoothing", 0.0),
                            ignore_index=kw.get("ignore_index", -100))


def t_conv_transpose2d(t, c, kw):
    # striate's HWIO (kh, kw, c_out // groups, c_in) is torch's (c_in, c_out // groups, kh, kw) transposed
    y = TF.conv_transpose2d(nchw(t["x"]), t["w"].permute(3, 2, 0, 1), t.get("b"), stride=kw.get("stride", 1),
                            padding=kw.get("padding", 0), output_padding=kw.get("output_padding", 0),
                            groups=kw.get("groups", 1), dilation=kw.get("dilation", 1))
    return nhwc(y)


def t_focal(t, c, kw):
    """torchvision.ops.sigmoid_focal_loss, written out."""
    z, y, alpha, gamma = t["logits"], t["targets"], kw.get("alpha", 0.25), kw.get("gamma", 2.0)
    p = torch.sigmoid(z)
    p_t = p * y + (1 - p) * (1 - y)
    loss = TF.binary_cross_entropy_with_logits(z, y, reduction="none") * (1 - p_t) ** gamma
    return (alpha * y + (1 - alpha) * (1 - y)) * loss


def t_dice(t, c, kw):
    """Soft Dice (classes on the last axis), written out."""
    p, labels, smooth = torch.softmax(t["logits"], -1), torch.tensor(c["labels"]), kw.get("smooth", 1.0)
    q = TF.one_hot(labels, p.shape[-1]).to(p.dtype)
    axes = tuple(range(p.ndim - 1))
    dice = (2 * (p * q).sum(axes) + smooth) / (p.sum(axes) + q.sum(axes) + smooth)
    return 1 - dice.mean()


def t_max_unpool2d(t, c, kw):
    indices = torch.tensor(c["indices"]).permute(0, 3, 1, 2)  # NHWC -> NCHW: the same row * w + col values
    return nhwc(TF.max_unpool2d(nchw(t["x"]), indices, **kw))


TORCH_OPS = {
    "conv2d": t_conv2d,
    "max_pool2d": _pool("max"),
    "relu_max_pool2d": _pool("relu_max"),
    "avg_pool2d": _pool("avg"),
    "global_avg_pool2d": lambda t, c, kw: t["x"].mean(dim=(1, 2)),
    "linear": lambda t, c, kw: TF.linear(t["x"], t["w"].T, t.get("b")),
    "flatten": lambda t, c, kw: t["x"].reshape(t["x"].shape[0], -1),
    "concat": lambda t, c, kw: torch.cat([t["a"], t["b"], t["c"]], dim=kw.get("axis", -1)),
    "relu": lambda t, c, kw: TF.relu(t["x"]),
    "leaky_relu": lambda t, c, kw: TF.leaky_relu(t["x"], kw.get("negative_slope", 0.01)),
    "sigmoid": lambda t, c, kw: torch.sigmoid(t["x"]),
    "tanh": lambda t, c, kw: torch.tanh(t["x"]),
    "softmax": lambda t, c, kw: TF.softmax(t["x"], dim=kw.get("axis", -1)),
    "log_softmax": lambda t, c, kw: TF.log_softmax(t["x"], dim=kw.get("axis", -1)),
    "batch_norm": t_batch_norm,
    "local_response_norm": lambda t, c, kw: nhwc(TF.local_response_norm(
        nchw(t["x"]), kw.get("size", 5), kw.get("alpha", 1e-4), kw.get("beta", 0.75), kw.get("k", 2.0))),
    "cross_entropy": t_cross_entropy,
    "mse_loss": lambda t, c, kw: TF.mse_loss(t["pred"], t["target"]),
    "binary_cross_entropy_with_logits": lambda t, c, kw: TF.binary_cross_entropy_with_logits(t["logits"], t["target"]),
    "conv_transpose2d": t_conv_transpose2d,
    "upsample": lambda t, c, kw: nhwc(TF.interpolate(nchw(t["x"]), **kw)),
    "max_unpool2d": t_max_unpool2d,
    "smooth_l1_loss": lambda t, c, kw: TF.smooth_l1_loss(t["pred"], t["target"], **kw),
    "huber_loss": lambda t, c, kw: TF.huber_loss(t["pred"], t["target"], **kw),
    "sigmoid_focal_loss": t_focal,
    "dice_loss": t_dice,
}


# --------------------------------------------------------------------------- the cases
def cases(rng):
    """(name, op, kwargs, differentiable inputs, constants, dtype) for a representative set."""
    r = rng.standard_normal

    def conv(name, shape, wshape, bias=True, dtype="float64", **kw):
        inputs = {"x": r(shape), "w": r(wshape) * 0.5}
        if bias:
            inputs["b"] = r(wshape[-1])
        return name, "conv2d", kw, inputs, {}, dtype

    yield conv("conv2d_pad1_bias", (2, 6, 6, 3), (3, 3, 3, 4), padding=1)
    yield conv("conv2d_same_stride2", (2, 7, 8, 3), (3, 3, 3, 4), stride=2, padding="same")
    yield conv("conv2d_same_stride2_float32", (2, 7, 8, 3), (3, 3, 3, 4), stride=2, padding="same", dtype="float32")
    yield conv("conv2d_same_stride3_even_kernel", (1, 8, 7, 2), (4, 2, 2, 3), stride=3, padding="same")
    yield conv("conv2d_dilation2", (2, 9, 8, 2), (3, 3, 2, 3), dilation=2, padding="same")
    yield conv("conv2d_groups2", (2, 6, 5, 4), (3, 3, 2, 6), groups=2, padding=(1, 2), stride=(2, 1))
    yield conv("conv2d_depthwise", (2, 6, 6, 3), (3, 3, 1, 6), groups=3, padding="valid", bias=False)

    yield "max_pool2d_2x2", "max_pool2d", {"kernel_size": 2}, {"x": r((2, 6, 5, 3))}, {}, "float64"
    yield "max_pool2d_3x3_s2_overlap", "max_pool2d", {"kernel_size": 3, "stride": 2}, {"x": r((2, 7, 7, 2))}, {}, "float64"
    yield "max_pool2d_same_s2", "max_pool2d", {"kernel_size": 3, "stride": 2, "padding": "same"}, {"x": r((1, 6, 5, 2))}, {}, "float64"
    # all-equal input: every window ties; the gradient goes to the first (top-left) maximum
    yield "max_pool2d_ties", "max_pool2d", {"kernel_size": 3, "stride": 2}, {"x": np.ones((1, 5, 5, 2))}, {}, "float64"
    yield "avg_pool2d_3x3_s2_pad1", "avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}, {"x": r((2, 7, 6, 2))}, {}, "float64"
    yield "avg_pool2d_same", "avg_pool2d", {"kernel_size": 2, "stride": 2, "padding": "same"}, {"x": r((1, 5, 5, 3))}, {}, "float64"
    yield "global_avg_pool2d", "global_avg_pool2d", {}, {"x": r((3, 4, 5, 2))}, {}, "float64"

    yield "linear", "linear", {}, {"x": r((4, 6)), "w": r((6, 3)), "b": r(3)}, {}, "float64"
    yield "flatten", "flatten", {}, {"x": r((2, 3, 2, 4))}, {}, "float64"
    yield "concat_channels", "concat", {"axis": -1}, {"a": r((2, 3, 3, 1)), "b": r((2, 3, 3, 2)), "c": r((2, 3, 3, 3))}, {}, "float64"

    yield "relu", "relu", {}, {"x": r((3, 7))}, {}, "float64"
    yield "leaky_relu", "leaky_relu", {"negative_slope": 0.2}, {"x": r((3, 7))}, {}, "float64"
    yield "sigmoid", "sigmoid", {}, {"x": r((3, 7)) * 20}, {}, "float64"
    yield "tanh", "tanh", {}, {"x": r((3, 7)) * 3}, {}, "float64"
    yield "softmax", "softmax", {"axis": -1}, {"x": r((4, 5)) * 3}, {}, "float64"
    large = np.array([[1000.0, 999.0, 990.0, 0.0], [-1000.0, 0.0, 1000.0, 500.0]])
    yield "softmax_large_logits", "softmax", {"axis": -1}, {"x": large}, {}, "float64"
    yield "log_softmax_large_logits", "log_softmax", {"axis": 1}, {"x": large}, {}, "float64"

    c = 4
    bn_inputs = lambda shape: {"x": r(shape) * 2 + 1, "gamma": rng.uniform(0.5, 2.0, c), "beta": r(c)}  # noqa: E731
    bn_consts = lambda: {"running_mean": r(c), "running_var": rng.uniform(0.5, 2.0, c)}  # noqa: E731
    yield "batch_norm_train", "batch_norm", {"training": True, "momentum": 0.1}, bn_inputs((3, 4, 3, c)), bn_consts(), "float64"
    yield "batch_norm_eval", "batch_norm", {"training": False}, bn_inputs((3, 4, 3, c)), bn_consts(), "float64"
    yield "batch_norm_train_dense", "batch_norm", {"training": True, "momentum": 0.3}, bn_inputs((6, c)), bn_consts(), "float64"

    yield "lrn_alexnet_defaults", "local_response_norm", {}, {"x": r((2, 3, 3, 8)) * 10}, {}, "float64"
    yield "lrn_size4_alpha1", "local_response_norm", {"size": 4, "alpha": 1.0, "beta": 0.75, "k": 1.0}, {"x": r((2, 3, 3, 7))}, {}, "float64"
    yield "lrn_size3_beta1", "local_response_norm", {"size": 3, "alpha": 0.5, "beta": 1.0, "k": 2.0}, {"x": r((1, 2, 2, 5))}, {}, "float64"

    labels = rng.integers(0, 5, 6)
    yield "cross_entropy", "cross_entropy", {}, {"logits": r((6, 5)) * 2}, {"labels": labels}, "float64"
    yield "cross_entropy_smoothing", "cross_entropy", {"label_smoothing": 0.1}, {"logits": r((6, 5)) * 2}, {"labels": labels}, "float64"
    yield "mse_loss", "mse_loss", {}, {"pred": r((4, 3)), "target": r((4, 3))}, {}, "float64"
    yield "bce_with_logits", "binary_cross_entropy_with_logits", {}, {"logits": r((4, 3)) * 5, "target": rng.uniform(0, 1, (4, 3))}, {}, "float64"

    # (added last, so that the cases above keep their random draws)
    # some windows all negative (no gradient), some with zeros tied with negatives
    x = r((2, 6, 6, 3))
    x[0, :2, :2] = -1.0
    x[1, :2, :2, 0] = [[0.0, -2.0], [0.0, -1.0]]
    yield "relu_max_pool2d_2x2", "relu_max_pool2d", {"kernel_size": 2}, {"x": x}, {}, "float64"
    yield "relu_max_pool2d_3x3_s2_same", "relu_max_pool2d", {"kernel_size": 3, "stride": 2, "padding": "same"}, {"x": r((1, 7, 6, 2))}, {}, "float64"
    # 3x3 stride 1 with 16+ channels: the shapes striate computes with Winograd F(4x4, 3x3)
    yield conv("conv2d_winograd_pad1_float32", (2, 8, 7, 16), (3, 3, 16, 16), padding=1, dtype="float32")
    yield conv("conv2d_winograd_valid_wide_float32", (1, 7, 6, 16), (3, 3, 16, 24), padding="valid", dtype="float32")
    yield conv("conv2d_winograd_asymmetric_pads", (1, 5, 7, 16), (3, 3, 16, 16), padding=(2, 0), bias=False)
    # upsampling, unpooling and the losses of localisation, detection and segmentation (tiny: the
    # fixtures' total size is bounded)
    yield "conv_transpose2d_groups_output_padding", "conv_transpose2d", {"stride": 2, "padding": 1, "output_padding": 1,
                                                                        "groups": 2}, \
        {"x": r((1, 3, 2, 2)), "w": r((3, 2, 1, 2)), "b": r(2)}, {}, "float64"
    yield "upsample_bilinear_size", "upsample", {"size": [5, 3], "mode": "bilinear", "align_corners": False}, \
        {"x": r((1, 3, 2, 2))}, {}, "float64"
    yield "upsample_nearest_scale", "upsample", {"scale_factor": 1.5, "mode": "nearest"}, {"x": r((1, 3, 2, 1))}, {}, \
        "float64"
    # the switches of a 2x2 max pooling of a 4x4 plane: each window's maximum, row * w + col
    yield "max_unpool2d", "max_unpool2d", {"kernel_size": 2}, {"x": r((1, 2, 2, 1))}, \
        {"indices": np.array([[[[5], [2]], [[12], [15]]]])}, "float64"
    yield "smooth_l1_loss_beta", "smooth_l1_loss", {"beta": 0.5}, {"pred": r((2, 4)), "target": r((2, 4))}, {}, "float64"
    yield "huber_loss_delta", "huber_loss", {"delta": 0.7}, {"pred": r((2, 4)), "target": r((2, 4)) * 2}, {}, "float64"
    yield "sigmoid_focal_loss", "sigmoid_focal_loss", {}, {"logits": r((2, 3)) * 3, "targets": rng.uniform(0, 1, (2, 3))}, \
        {}, "float64"
    yield "cross_entropy_per_pixel_weight_ignore", "cross_entropy", {"weight": [0.5, 2.0, 1.0], "ignore_index": 255}, \
        {"logits": r((1, 2, 2, 3))}, {"labels": np.array([[[0, 2], [255, 1]]])}, "float64"
    yield "dice_loss", "dice_loss", {"smooth": 1.0}, {"logits": r((1, 2, 2, 3))}, {"labels": np.array([[[0, 2], [2, 1]]])}, \
        "float64"


def run_case(op, kwargs, inputs, consts, dtype, seed):
    tin = {k: torch.tensor(v.astype(dtype), requires_grad=True) for k, v in inputs.items()}
    tconst = {k: (torch.tensor(v.astype(dtype)) if v.dtype.kind == "f" else v) for k, v in consts.items()}
    out = TORCH_OPS[op](tin, tconst, kwargs)
    gy = np.random.default_rng(seed).standard_normal(tuple(out.shape)).astype(dtype)
    out.backward(torch.tensor(gy))
    arrays = {"gy": gy, "out": out.detach().numpy()}
    for k, v in inputs.items():
        arrays[f"in_{k}"] = v.astype(dtype)
        arrays[f"grad_{k}"] = tin[k].grad.numpy()
    for k, v in consts.items():
        arrays[f"const_{k}"] = v.astype(dtype) if v.dtype.kind == "f" else v
        if v.dtype.kind == "f":
            arrays[f"after_{k}"] = tconst[k].numpy()  # updated in place by torch (batch-norm training)
    return arrays


def save_atomic(path: Path, arrays: dict):
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "golden", help="output folder")
    parser.add_argument("--only", nargs="+", metavar="OP", help="write only the cases of these ops")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240601)
    total = 0
    for i, (name, op, kwargs, inputs, consts, dtype) in enumerate(cases(rng)):
        if args.only and op not in args.only:
            continue
        arrays = run_case(op, kwargs, inputs, consts, dtype, seed=i)
        meta = {"op": op, "kwargs": kwargs, "inputs": list(inputs), "consts": list(consts), "dtype": dtype,
                "torch": torch.__version__}
        arrays["meta"] = np.array(json.dumps(meta))
        path = args.out / f"{name}.npz"
        save_atomic(path, arrays)
        total += path.stat().st_size
        print(f"{path.name:40s} {path.stat().st_size:7d} bytes")
    print(f"total {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
