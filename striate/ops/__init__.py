"""Primitive ops: each a :class:`striate.tensor.Function` with forward and backward side by side,
working on raw arrays: the reference math. Users normally call them through
:mod:`striate.functional`, which validates arguments and documents shapes. Faster strategies for
the same math live beneath, in :mod:`striate.backend`. Op classes end in ``Op`` (``Conv2dOp``),
so that they never read like the layers of :mod:`striate.nn` (``Conv2D``).
"""
from .activation import AddReLUOp, LeakyReLUOp, LogSoftmaxOp, ReLUOp, SigmoidOp, SoftmaxOp, TanhOp
from .conv import Conv2dOp, ConvTranspose2dOp
from .dropout import DropoutOp
from .geometry import col2im, im2col, offset_view, pad_nhwc, sliding_windows
from .linear import ConcatOp, LinearOp
from .loss import BinaryCrossEntropyWithLogitsOp, CrossEntropyOp, HeatmapFocalLossOp, SigmoidFocalLossOp, SmoothL1Op
from .normalization import BatchNormOp, LocalResponseNormOp
from .pooling import AvgPool2dOp, MaxPool2dOp, MaxUnpool2dOp
from .resize import UpsampleOp
from .primitives import (AbsOp, AddOp, CastOp, DivOp, ExpOp, GetItemOp, LogOp, MatMulOp, MaxOp, MulOp, NegOp,
                         PowOp, ReshapeOp, SubOp, SumOp, TransposeOp)
