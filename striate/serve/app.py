"""The Flask app factory: one app, its views (pages) and its JSON API (see the package docstring)."""
from __future__ import annotations

from ..optional import require
from .dense import ServedDense
from .inference import ServedModel

MAX_BYTES = 4 * 1024 * 1024   # a drawn digit is ~10 KB, a phone photo a few MB


def _flask():
    return require("flask", "serve", "striate serve")


def create_app(served: ServedModel, max_bytes: int = MAX_BYTES):
    """Build the Flask app that serves ``served``: a classifier (:class:`~striate.serve.inference.ServedModel`)
    or a localiser, detector or segmenter (:class:`~striate.serve.dense.ServedDense`); the navigation
    shows the views that work for it.

    Args:
        served: the model, with its input shape, classes and standardisation.
        max_bytes: largest request body accepted; larger ones get a 400 naming the limit.

    Example::

        >>> app = create_app(ServedModel(st.models.lenet5(), (28, 28, 1)))
        >>> app.test_client().get("/api/model").json["input_shape"]
        [28, 28, 1]
    """
    flask = _flask()
    if not isinstance(served, (ServedModel, ServedDense)):
        raise TypeError(f"create_app expects a ServedModel or a ServedDense. Received: {type(served).__name__}.")
    from . import api, errors, views
    from .state import KEY, ServeState

    app = flask.Flask(__name__)                      # templates/ and static/ beside this file
    app.config["MAX_CONTENT_LENGTH"] = int(max_bytes)
    app.json.sort_keys, app.json.compact = False, True
    app.extensions[KEY] = ServeState(served, int(max_bytes))
    errors.install(app)
    for bp in [v.bp for v in views.VIEWS] + list(api.BLUEPRINTS):
        app.register_blueprint(bp)
    app.before_request(views.gate)
    app.context_processor(lambda: {"nav": views.nav(app.extensions[KEY].task)})
    return app
