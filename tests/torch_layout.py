"""PyTorch-side helpers shared by the oracle tests and scripts/make_golden.py.

An independent statement of the layout and padding conventions (it deliberately does not import
striate's geometry, so the oracle checks it rather than repeating it).
"""
import math

import torch
import torch.nn.functional as TF


def nchw(t):
    """NHWC torch tensor -> NCHW view (inside the graph)."""
    return t.permute(0, 3, 1, 2)


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def oihw(t):
    """HWIO torch tensor -> OIHW view."""
    return t.permute(3, 2, 0, 1)


def keras_same_pads(size, kernel, stride, dilation=1):
    """(before, after) of TensorFlow's 'same' padding: out = ceil(size / stride); odd extra after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def explicit_pads(padding, hw, kernel, stride, dilation=(1, 1)):
    """(top, bottom, left, right) for an int, a pair, 'valid' or 'same'."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        return (*keras_same_pads(hw[0], kernel[0], stride[0], dilation[0]),
                *keras_same_pads(hw[1], kernel[1], stride[1], dilation[1]))
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return ph, ph, pw, pw


def torch_pad(x, pads, value=0.0):
    """Pad an NCHW tensor by (top, bottom, left, right)."""
    top, bottom, left, right = pads
    return TF.pad(x, (left, right, top, bottom), value=value)


def randomize_batch_norm(net, seed=0):
    """Give every BatchNorm2d of a torch module non-trivial running statistics and affine weights
    (fresh ones are 0/1, which would hide a swapped or missing conversion); return ``net``."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return net
