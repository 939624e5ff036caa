"""Primitive ops: each a :class:`striate.tensor.Function` with forward and backward side by side,
working on raw arrays. Users normally call them through :mod:`striate.functional`, which validates
arguments and documents shapes."""
from . import memory, parallel
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv2d, im2col, pad_nhwc, sliding_windows
from .dropout import Dropout
from .linear import Concat, Linear
from .loss import BinaryCrossEntropyWithLogits, CrossEntropy
from .normalization import BatchNorm, LocalResponseNorm
from .pooling import AvgPool2d, MaxPool2d

memory.keep_freed_memory()
