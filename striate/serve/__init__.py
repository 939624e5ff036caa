"""``striate serve``: a local web page where a learner draws a digit and watches every layer respond.

The page (HTML, CSS and JavaScript in ``static/``, served by the app itself: no CDN, no network)
sends the drawing to ``POST /api/predict``; striate runs the model on the server and answers with
the class probabilities and every layer's activation maps as small PNGs.

    from striate.serve import create_app, load_served_model
    app = create_app(load_served_model("runs/mnist-lenet5/weights.npz"))
    app.run()                      # or: striate serve --checkpoint runs/mnist-lenet5/weights.npz

Flask is an optional extra: ``pip install striate[serve]``. Place in the house: above training,
models and summary (it loads weights, trains the default model and reads receptive fields),
below cli.

* :mod:`striate.serve.preprocess` — decoding pictures; MNIST-style and optdigits-style
  normalisation of a drawn digit.
* :mod:`striate.serve.inference` — :class:`ServedModel`: forward hooks, layer outputs, fields.
* :mod:`striate.serve.render` — activation maps and filters as PNG data URLs.
* :mod:`striate.serve.model_file` — the served model: a weights file, or the default trained in seconds.
* :mod:`striate.serve.app` — the Flask app factory :func:`create_app`.
"""
from .app import create_app
from .inference import ServedModel
from .model_file import ModelFileError, default_model_path, default_served_model, load_served_model
from .preprocess import ImageError

__all__ = ["create_app", "ServedModel", "load_served_model", "default_served_model", "default_model_path",
           "ModelFileError", "ImageError"]
