"""What every view and API route of one app shares: the served model, the request limits, and the
images the page has sent (so that a click on a unit is explained without sending the image again).

:func:`~striate.serve.app.create_app` stores one :class:`ServeState` in ``app.extensions``;
a route reads it with :func:`current` (Flask's ``current_app`` underneath), so blueprints stay
plain module-level objects that any number of apps can register.
"""
from __future__ import annotations

import collections
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
    """The model behind the app, its description (computed once: the model does not change) and limits."""

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

    def __post_init__(self):
        if self.model_info is None:
            self.model_info = self.served.describe()
            self.model_info.update(default_preprocess=default_preprocess(self.served),
                                   preprocess_modes=list(MODES), max_bytes=self.max_bytes)


def current() -> ServeState:
    """The :class:`ServeState` of the app handling this request."""
    from flask import current_app

    return current_app.extensions[KEY]
