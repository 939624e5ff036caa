"""What every view and API route of one app shares: the served model and the request limits.

:func:`~striate.serve.app.create_app` stores one :class:`ServeState` in ``app.extensions``;
a route reads it with :func:`current` (Flask's ``current_app`` underneath), so blueprints stay
plain module-level objects that any number of apps can register.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .inference import ServedModel
from .preprocess import MODES

KEY = "striate.serve"


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

    def __post_init__(self):
        if self.model_info is None:
            self.model_info = self.served.describe()
            self.model_info.update(default_preprocess=default_preprocess(self.served),
                                   preprocess_modes=list(MODES), max_bytes=self.max_bytes)


def current() -> ServeState:
    """The :class:`ServeState` of the app handling this request."""
    from flask import current_app

    return current_app.extensions[KEY]
