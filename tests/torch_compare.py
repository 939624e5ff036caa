"""The comparison the PyTorch oracle tests run for every op: forward and every input gradient."""
import numpy as np
import torch

import striate as st


def compare(st_fn, torch_fn, arrays, assert_close, dtype, seed=0):
    """Forward and all input gradients of ``st_fn`` vs ``torch_fn`` with a random cotangent.

    ``arrays`` are differentiable inputs (None entries are passed through as None).
    Returns (striate output, torch output) for further checks.
    """
    xs = [None if a is None else st.Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    y = st_fn(*xs)
    gy = np.random.default_rng(seed + 99).standard_normal(y.shape).astype(dtype)
    y.backward(gy)
    ts = [None if a is None else torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    ty = torch_fn(*ts)
    ty.backward(torch.tensor(gy))
    assert y.dtype == dtype, f"output dtype {y.dtype}, expected {np.dtype(dtype)}"
    assert_close(y.data, ty.detach().numpy(), dtype=dtype, what="forward")
    for i, (x, t) in enumerate(zip(xs, ts)):
        if x is None:
            continue
        assert x.grad is not None, f"input {i} got no gradient"
        assert x.grad.dtype == dtype
        assert_close(x.grad, t.grad.numpy(), dtype=dtype, what=f"gradient of input {i}")
    return y, ty
