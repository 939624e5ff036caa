"""Module: the base of every layer and model.

A Module owns Parameters (tensors that train), buffers (arrays that are state but not trained, e.g.
batch-norm running statistics) and sub-modules, found by attribute assignment as in PyTorch. Layers
that need their input's size create their parameters on the first call (Keras style);
``model.build(input_shape)`` does that call with zeros so the parameters exist before training.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..backend.threads import blas_scope
from ..tensor import Tensor, no_grad


class Parameter(Tensor):
    """A Tensor that is a trainable weight of a Module (``requires_grad=True`` unless frozen)."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


# Bumped whenever a hook is added or removed anywhere: a Sequential's cached fusion plan depends
# on which of its layers have hooks (striate.nn.fusion).
_hooks_epoch = [0]


def hooks_epoch() -> int:
    return _hooks_epoch[0]


class _HookHandle:
    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)
            _hooks_epoch[0] += 1


class Module:
    """Base class for layers and models.

    Subclass it and write ``forward``; assign Parameters and sub-modules as attributes::

        class Residual(st.nn.Module):
            def __init__(self, filters):
                super().__init__()
                self.conv1 = Conv2D(filters, 3, padding='same')
                self.conv2 = Conv2D(filters, 3, padding='same')

            def forward(self, x):
                return F.relu(x + self.conv2(F.relu(self.conv1(x))))
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "_forward_pre_hooks", [])
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------------- attribute routing
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call super().__init__() in {type(self).__name__}.__init__ before assigning attributes")
        for store in (self._parameters, self._modules, self._buffers):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self.__dict__.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # only called when normal lookup fails
        d = self.__dict__
        for store in ("_parameters", "_modules", "_buffers"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for store in (self._parameters, self._modules, self._buffers):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array) -> None:
        """Keep ``array`` as state (saved in state_dict) that is not trained."""
        self.__dict__.pop(name, None)
        self._buffers[name] = array

    def add_module(self, name: str, module: Module) -> None:
        setattr(self, name, module)

    # ----------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        for hook in self._forward_pre_hooks:
            hook(self, args)
        if blas_scope.local.depth:  # inside a model's call already
            out = self.forward(*args, **kwargs)
        else:
            with blas_scope:  # BLAS limited once for the whole model, not per op (striate.backend.threads)
                out = self.forward(*args, **kwargs)
        for hook in self._forward_hooks:
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_hook(self, hook) -> _HookHandle:
        """Call ``hook(module, inputs, output)`` after every forward; returns a handle with ``remove()``.
        A hook that returns a value replaces the output."""
        self._forward_hooks.append(hook)
        _hooks_epoch[0] += 1
        return _HookHandle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook) -> _HookHandle:
        """Call ``hook(module, inputs)`` before every forward; returns a handle with ``remove()``."""
        self._forward_pre_hooks.append(hook)
        _hooks_epoch[0] += 1
        return _HookHandle(self._forward_pre_hooks, hook)

    def has_hooks(self) -> bool:
        return bool(self._forward_hooks or self._forward_pre_hooks)

    def build(self, input_shape, dtype=np.float32) -> Module:
        """Create lazily-shaped parameters by running zeros of ``input_shape`` through the model.

        ``input_shape`` is NHWC with or without the batch axis, e.g. ``(28, 28, 1)``. The forward
        runs in evaluation mode under ``no_grad`` so no statistic is updated.
        """
        shape = tuple(input_shape)
        if not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
            raise ValueError(f"input_shape must be positive ints. Received: input_shape={input_shape!r}.")
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                self(Tensor(np.zeros((1,) + shape if len(shape) in (1, 3) else shape, dtype=dtype)))
        finally:
            self.train(was_training)
        return self

    # ----------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = ""):
        """Yield (qualified name, module) for this module and every descendant, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def children(self):
        return list(self._modules.values())

    def named_parameters(self, prefix: str = ""):
        """Yield (qualified name, Parameter), e.g. ``('features.0.w', ...)``; each once."""
        seen = set()
        for mod_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, trainable_only: bool = False) -> list:
        """All Parameters (or only those with requires_grad) — what an optimizer takes."""
        return [p for _, p in self.named_parameters() if p.requires_grad or not trainable_only]

    def named_buffers(self):
        for mod_name, module in self.named_modules():
            for name, b in module._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), b

    def num_parameters(self, trainable_only: bool = False) -> int:
        return int(sum(p.size for p in self.parameters(trainable_only)))

    # ----------------------------------------------------------------- modes, freezing, grads
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    # ----------------------------------------------------------------- transfer learning
    # ``trainable`` (frozen or not) and ``training`` (train or eval mode) are different things: a
    # frozen BatchNorm normalises with its running statistics and leaves them alone even while the
    # model trains (the pitfall of Keras 2 and PyTorch, where a frozen BN still updates its stats).
    trainable = True

    def freeze(self, until: str | None = None, train_bn: bool = False) -> Module:
        """Freeze parameters for transfer learning: ``requires_grad=False``, batch norm on its running
        statistics (not updated), whatever mode the model is in.

        Args:
            until: freeze only the layers up to and including this one (a name of
                ``named_modules()``, e.g. ``"features.3"`` or ``"layer3"``); default: all.
            train_bn: keep batch-norm layers trainable (gamma, beta and their statistics).

        Example::

            >>> model.freeze(until="features")   # train only the classifier
        """
        named = list(self.named_modules())
        if until is None:
            chosen = named
        else:
            names = [n for n, _ in named]
            if until not in names:
                from ..names import did_you_mean
                hint = did_you_mean(until, names, exact_spelling=True)
                shown = ", ".join(n for n in names[1:13]) + (", ..." if len(names) > 13 else "")
                raise ValueError(f"freeze(until=...) must name a layer of the model.{hint} "
                                 f"Received: until={until!r}. Layers: {shown}.")
            last = max(i for i, n in enumerate(names) if n == until or n.startswith(until + "."))
            chosen = named[:last + 1]
        for _, m in chosen:
            if train_bn and type(m).__name__ == "BatchNorm":
                continue
            object.__setattr__(m, "trainable", False)
            for p in m._parameters.values():
                if p is not None:
                    p.requires_grad = False
                    p.grad = None
        return self

    def unfreeze(self) -> Module:
        """Make every parameter trainable again (and batch norm use batch statistics in training)."""
        for m in self.modules():
            object.__setattr__(m, "trainable", True)
            for p in m._parameters.values():
                if p is not None:
                    p.requires_grad = True
        return self

    def replace_head(self, num_classes: int, rng=None) -> Module:
        """Replace the last dense layer (or, without one, the last conv: NiN) by a fresh, trainable one
        with ``num_classes`` outputs and the same input size; return the new layer.

        Example::

            >>> model = st.models.lenet5(weights=...); model.replace_head(5)
        """
        # A layer that can head a classifier says so with ``_head_rank`` (Dense 2, Conv2D 1) and makes
        # its fresh copy with ``_new_head``: the last layer of the highest rank is replaced.
        named = list(self.named_modules())
        rank = max((getattr(m, "_head_rank", 0) for _, m in named), default=0)
        heads = [(n, m) for n, m in named if rank and getattr(m, "_head_rank", 0) == rank]
        if not heads or not heads[-1][0]:
            raise ValueError("replace_head: the model has no Dense or Conv2D layer to replace.")
        name, old = heads[-1]
        if old.w is None:
            raise ValueError("replace_head: build the model first (model.build(input_shape)).")
        new = old._new_head(num_classes, rng)
        new.astype(old.w.dtype)
        parent_name, _, attr = name.rpartition(".")
        parent = dict(named)[parent_name]
        parent._modules[attr] = new  # same key, same place in the order
        new.train(self.training)
        return new

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def astype(self, dtype) -> Module:
        """Cast every parameter and floating buffer to ``dtype`` in place (e.g. float64 for gradcheck)."""
        for m in self.modules():
            for p in m._parameters.values():
                p.data = p.data.astype(dtype)
                p.grad = None
            for name, b in list(m._buffers.items()):
                if isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.floating):
                    m._buffers[name] = b.astype(dtype)
        return self

    # ----------------------------------------------------------------- state
    def state_dict(self) -> OrderedDict:
        """Name -> array copy of every parameter and buffer."""
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data.copy()
        for name, b in self.named_buffers():
            if b is not None:
                state[name] = np.array(b, copy=True)
        return state

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays from ``state`` into this module's parameters and buffers.

        Shapes must match exactly. With ``strict=True`` (default) the key sets must match too;
        a mismatch lists the missing and unexpected keys. Nothing is changed on error.
        """
        targets = {name: ("param", p) for name, p in self.named_parameters()}
        owners = {}
        for mod_name, module in self.named_modules():
            for name in module._buffers:
                full = f"{mod_name}.{name}" if mod_name else name
                targets[full] = ("buffer", None)
                owners[full] = (module, name)
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            hint = ""
            if not targets:
                hint = " The model has no parameters yet: call model.build(input_shape) first."
            raise KeyError(
                f"state_dict does not match the model. Missing keys: {missing or 'none'}; "
                f"unexpected keys: {unexpected or 'none'}.{hint}"
            )
        updates = []
        for key, value in state.items():
            if key not in targets:
                continue
            value = np.asarray(value)
            kind, p = targets[key]
            current = p.data if kind == "param" else owners[key][0]._buffers[owners[key][1]]
            if current is not None and tuple(current.shape) != tuple(value.shape):
                raise ValueError(
                    f"state_dict shape mismatch for {key!r}: the model has {tuple(current.shape)}, "
                    f"the state has {tuple(value.shape)}."
                )
            updates.append((key, kind, p, value, current))
        for key, kind, p, value, current in updates:
            dtype = current.dtype if current is not None else value.dtype
            if kind == "param":
                p.data = value.astype(dtype, copy=True)
            else:
                module, name = owners[key]
                module._buffers[name] = value.astype(dtype, copy=True)

    # ----------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        if len(lines) == 1:
            return lines[0] + ")"
        return "\n".join(lines) + "\n)"
