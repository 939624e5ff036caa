"""Finite-difference gradient checking, public so users can verify the ops they write."""
from __future__ import annotations

import numpy as np

from .tensor import Tensor, as_tensor


def numerical_grad(fn, inputs, index, gy, eps=1e-6):
    """Central-difference gradient of ``sum(fn(*inputs) * gy)`` with respect to ``inputs[index]``."""
    x = inputs[index].data
    g = np.zeros_like(x)
    flat_x, flat_g = x.reshape(-1), g.reshape(-1)  # views: writes reach x and g
    for i in range(flat_x.size):
        orig = flat_x[i]
        flat_x[i] = orig + eps
        plus = float((fn(*inputs).data * gy).sum())
        flat_x[i] = orig - eps
        minus = float((fn(*inputs).data * gy).sum())
        flat_x[i] = orig
        flat_g[i] = (plus - minus) / (2 * eps)
    return g


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0,
              raise_exception: bool = True) -> bool:
    """Check the analytic gradients of ``fn`` against central finite differences, in float64.

    Args:
        fn: function of Tensors returning a Tensor.
        inputs: sequence of Tensors or arrays. Those that require grad (arrays always do) are
            checked; they must be float64, since float32 differences are too coarse.
        eps: finite-difference step.
        atol, rtol: tolerances of ``|analytic - numeric| <= atol + rtol * |numeric|``.
        seed: seed of the random output cotangent (a random projection tests every output).

    Returns:
        True if every gradient agrees; otherwise raises ValueError naming the input and the worst
        element (or returns False with ``raise_exception=False``).

    Example::

        >>> x = st.Tensor(np.random.randn(2, 5, 5, 3), requires_grad=True)
        >>> w = st.Tensor(np.random.randn(3, 3, 3, 4), requires_grad=True)
        >>> st.gradcheck(lambda x, w: F.conv2d(x, w, padding='same'), [x, w])
        True
    """
    tensors = []
    for i, x in enumerate(inputs):
        t = x if isinstance(x, Tensor) else Tensor(np.asarray(x), requires_grad=True)
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs; input {i} has dtype {t.dtype}. Use .astype(np.float64).")
        tensors.append(t)
    out = as_tensor(fn(*tensors))
    gy = np.random.default_rng(seed).standard_normal(out.shape)
    for t in tensors:
        t.grad = None
    out.backward(gy)
    analytic = [t.grad for t in tensors]
    for i, t in enumerate(tensors):
        if not t.requires_grad:
            continue
        numeric = numerical_grad(fn, tensors, i, gy, eps)
        got = np.zeros_like(numeric) if analytic[i] is None else analytic[i]
        err = np.abs(got - numeric) - (atol + rtol * np.abs(numeric))
        if (err > 0).any():
            worst = np.unravel_index(np.argmax(err), err.shape)
            msg = (f"gradcheck failed for input {i} (shape {t.shape}): at index {tuple(int(v) for v in worst)} "
                   f"analytic={got[worst]:.8g}, numeric={numeric[worst]:.8g}; "
                   f"max abs difference {np.abs(got - numeric).max():.3g}.")
            if raise_exception:
                raise ValueError(msg)
            return False
    return True
