"""striate: a convolutional neural network library on NumPy, readable and verified against PyTorch.

    import striate as st
    import striate.functional as F
"""
from . import functional, nn, ops
from . import data, models, optim, training  # noqa: E402  (layers above nn)
from . import io, onnx  # noqa: E402  (model exchange; the onnx/safetensors packages load only when used)
from . import detection  # noqa: E402  (boxes: IoU, NMS, anchor coding)
from .gradcheck import gradcheck
from .backend.threads import get_num_threads, set_num_threads
from .random import manual_seed
from .summary import summary
from .tensor import Function, Tensor, enable_grad, is_grad_enabled, no_grad
from .validation import GeometryError

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "manual_seed", "gradcheck",
           "get_num_threads", "set_num_threads", "GeometryError",
           "functional", "nn", "ops", "data", "models", "optim", "training", "summary", "io", "onnx",
           "detection"]
