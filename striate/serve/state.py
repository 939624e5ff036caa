"""What every view and API route of one app shares: the served model, the request limits, and the
images the page has sent (so that a click on a unit is explained without sending the image again).

:func:`~striate.serve.app.create_app` stores one :class:`ServeState` in ``app.extensions``;
a route reads it with :func:`current` (Flask's ``current_app`` underneath), so blueprints stay
plain module-level objects that any number of apps can register.
"""
from __future__ import annotations

import collections
import functools
import hashlib
import threading
from dataclasses import dataclass, field

import numpy as np

from .inference import ServedModel
from .preprocess import MODES

KEY = "striate.serve"
INPUTS_KEPT = 16      # prepared images remembered for later explanations (a 224x224x3 image is 600 KB)
RECORDS_KEPT = 4      # recorded forwards (every layer's input and output: ~100 MB for ResNet-18 at 224)
BACKWARDS_KEPT = 2    # recorded backward passes (the forward's graph and every layer's gradient)


class LRU:
    """A small least-recently-used map, safe to share between request threads."""

    def __init__(self, size: int):
        self.size, self._items, self._lock = int(size), collections.OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value):
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def __len__(self):
        return len(self._items)


def input_key(x: np.ndarray) -> str:
    """The key of a prepared image: a hash of its shape and float32 bytes."""
    a = np.ascontiguousarray(x, np.float32)
    return hashlib.sha1(repr(a.shape).encode() + a.tobytes()).hexdigest()[:20]


def default_preprocess(served: ServedModel) -> str:
    """Drawn digits are centred for square one-channel models; anything else is resized."""
    h, w, c = served.input_shape
    return "digit" if c == 1 and h == w else "resize"


@dataclass
class ServeState:
    """The model behind the app, its description (computed once: the model does not change) and limits.

    ``served`` is a :class:`ServedModel` (a classifier) or a :class:`~striate.serve.dense.ServedDense`.
    """

    served: ServedModel
    max_bytes: int
    model_info: dict = field(default=None)
    inputs: LRU = field(default_factory=lambda: LRU(INPUTS_KEPT))        # key -> prepared image (h, w, c)
    records: LRU = field(default_factory=lambda: LRU(RECORDS_KEPT))      # key -> ForwardRecord
    backwards: LRU = field(default_factory=lambda: LRU(BACKWARDS_KEPT))  # (key, class) -> BackwardRecord

    def remember(self, x: np.ndarray) -> str:
        """Keep a prepared image for later explanations; return its key (see :func:`input_key`)."""
        key = input_key(x)
        self.inputs.put(key, np.asarray(x, np.float32))
        return key

    @property
    def task(self) -> str:
        """What the served model does: ``"classification"``, or a dense task (:data:`~.dense.DENSE_TASKS`)."""
        return task_of(self.served)

    def __post_init__(self):
        if self.model_info is None:
            self.model_info = self.served.describe()
            if self.task == "classification":
                self.model_info.update(task="classification", default_preprocess=default_preprocess(self.served),
                                       preprocess_modes=list(MODES))
            self.model_info["max_bytes"] = self.max_bytes


def task_of(served) -> str:
    """``"classification"`` for a :class:`ServedModel`, else the dense model's task."""
    return "classification" if isinstance(served, ServedModel) else served.task


def serves(*tasks):
    """Decorate an API route that answers only for models of ``tasks``: for any other model it is an
    HTTP 400 whose one line names the served model and where its answers are."""
    def wrap(route):
        @functools.wraps(route)
        def checked(*args, **kwargs):
            state = current()
            if state.task not in tasks:
                from flask import request

                where = ("POST /api/predict" if state.task == "classification" else "POST /api/dense") + \
                    " answers for it, and the page at / shows it"
                kinds = tasks[0] if len(tasks) == 1 else f"{', '.join(tasks[:-1])} or {tasks[-1]}"
                raise ValueError(f"{request.method} {request.path} answers for {kinds} models; the "
                                 f"served model {state.served.name} is a {state.task} model: {where}.")
            return route(*args, **kwargs)
        return checked
    return wrap


def current() -> ServeState:
    """The :class:`ServeState` of the app handling this request."""
    from flask import current_app

    return current_app.extensions[KEY]
