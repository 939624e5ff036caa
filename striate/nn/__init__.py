"""Layers with parameters (Modules) and weight initialisers."""
from . import init
from .layers import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, GlobalMaxPool2D,
                     Identity, LeakyReLU, LocalResponseNorm, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh)
from .layers import ConvTranspose2D, Upsample
from .fold import fold_batch_norm
from .layer_list import LayerListError, is_layer_list, parse_layers
from .module import Module, Parameter
from .sequential import Sequential

__all__ = [
    "Module", "Parameter", "Sequential", "Conv2D", "Dense", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D",
    "GlobalMaxPool2D", "Flatten", "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "BatchNorm",
    "LocalResponseNorm", "init", "fold_batch_norm",
    "ConvTranspose2D", "Upsample",
    "parse_layers", "is_layer_list", "LayerListError",
]
