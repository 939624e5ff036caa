"""Sequential: layers applied one after another."""
from __future__ import annotations

from . import fusion
from .module import Module


class Sequential(Module):
    """Layers applied one after another: ``Sequential(Conv2D(6, 5), ReLU(), MaxPool2D(2))``.

    Indexing returns a layer (or a Sequential for a slice); ``append`` adds one.
    """

    def __init__(self, *layers, name: str | None = None):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules. Received: layer {i} of type {type(layer).__name__}.")
            self._modules[str(i)] = layer
        self.name = name

    def append(self, layer: Module) -> Sequential:
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.append takes a Module. Received: {type(layer).__name__}.")
        self._modules[str(len(self._modules))] = layer
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def forward(self, x):
        # the steps of the layers, some neighbours fused into one op (striate.nn.fusion)
        for step in fusion.plan(list(self._modules.values())):
            x = step(x)
        return x
