"""Sequential: layers applied one after another."""
from __future__ import annotations

from . import fusion
from .module import Module, hooks_epoch


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
        for step in self._steps():
            x = step(x)
        return x

    def _steps(self):
        """The layers as the steps of :func:`striate.nn.fusion.plan` (some neighbours fused into
        one op), made again only when the layers or anyone's hooks changed."""
        key = (hooks_epoch(), tuple(self._modules.values()))
        if self.__dict__.get("_plan_key") != key:
            self.__dict__["_plan"], self.__dict__["_plan_key"] = fusion.plan(list(key[1])), key
        return self.__dict__["_plan"]
