"""Name -> model builder registry: ``st.models.list()``, ``st.models.get(name, **kwargs)``."""
from __future__ import annotations

from typing import Callable, NamedTuple

from ..names import did_you_mean


class ModelInfo(NamedTuple):
    name: str
    builder: Callable
    description: str
    input_shape: tuple  # native (height, width, channels)


_REGISTRY: dict[str, ModelInfo] = {}


def register(name: str, description: str, input_shape: tuple, builder: Callable | None = None):
    """Register ``builder`` under ``name`` (usable as a decorator)."""
    def add(fn):
        if name in _REGISTRY:
            raise ValueError(f"A model named {name!r} is already registered.")
        _REGISTRY[name] = ModelInfo(name, fn, description, tuple(input_shape))
        return fn

    return add(builder) if builder is not None else add


def list_models() -> list[str]:
    """Names of the registered architectures, in family order (LeNet ... ResNet)."""
    return list(_REGISTRY)


def info(name: str) -> ModelInfo:
    """Builder, one-line description and native input shape of ``name``."""
    if not isinstance(name, str) or name not in _REGISTRY:
        available = list_models()
        raise ValueError(f"Unknown model {name!r}.{did_you_mean(name, available)} "
                         f"Available models: {', '.join(available)}.")
    return _REGISTRY[name]


def get(name: str, **kwargs):
    """Build the model registered as ``name`` (kwargs go to its builder, e.g. ``num_classes=10``).

    Example::

        >>> st.models.get("resnet20", num_classes=100).num_parameters()
    """
    return info(name).builder(**kwargs)
