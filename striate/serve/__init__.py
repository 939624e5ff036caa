"""``striate serve``: a local web app where a learner draws a digit and watches every layer respond.

One Flask app (:func:`create_app`) with several views that share a navigation bar, and a JSON
API they call; the model runs in striate on the server, the pages only draw. Everything is
served by the app itself: no CDN, no network.

    from striate.serve import create_app, load_served_model
    app = create_app(load_served_model("runs/mnist-lenet5/weights.npz"))
    app.run()                      # or: striate serve --checkpoint runs/mnist-lenet5/weights.npz

Where things live (a new view is one template, one blueprint, one JS module, and its API routes):

* ``views/<view>.py`` — a Blueprint with a ``page`` endpoint that renders the view's template, and
  its ``TITLE``; add the module to ``views.VIEWS`` and it appears in every page's navigation.
  Today: ``draw`` (``/``: draw a digit, every layer's maps, receptive fields; click a unit to
  explain it), ``dense`` (``/dense``: draw several digits anywhere, a detector's boxes or a
  segmenter's mask follow the pen), ``network3d`` (``/3d``: the network in 3D, a unit's
  connections), ``explorer`` (``/explorer``: one layer's conv arithmetic) and ``train``
  (``/train``). A view's ``TASKS`` names the models it works for; the navigation shows the views
  of the served model's task (a classifier's, or a localiser's, detector's or segmenter's).
* ``templates/<view>.html`` — extends ``base.html`` (header, navigation, footer, stylesheet) and
  fills its ``main`` and ``scripts`` blocks; ``static/css/style.css`` styles every view.
* ``static/js/<view>.js`` — the view's ES module; ``static/js/common.js`` holds what views share:
  fetching JSON with the API's one-line errors, number formats, drawing an image or a map on a
  canvas with its pixel grid and a unit's receptive-field box; ``static/js/explain_panel.js`` the
  explanation panel that the Network and 3D views open on a click.
* ``api/<area>.py`` — a Blueprint under ``/api/`` made with :func:`~striate.serve.errors.api_errors`,
  listed in ``api.BLUEPRINTS``; routes read the served model through
  :func:`striate.serve.state.current` and raise ValueError/TypeError for a bad request, which
  becomes an HTTP 400 with ``{"error": "<one line>"}`` (an unexpected failure a 500 line, its
  traceback in the server's log); a route for some models only is marked
  :func:`~striate.serve.state.serves`. Today: ``api/model.py`` (``GET /api/model``,
  ``POST /api/predict``), ``api/dense.py`` (``POST /api/dense``), ``api/conv.py`` (``GET /api/conv``, ``GET /api/conv/frames``) and
  ``api/explain.py`` (``GET /api/explain``, ``GET /api/gradient``).

The library beneath the routes:

* :mod:`striate.serve.preprocess` — decoding pictures; MNIST-style and optdigits-style
  normalisation of a drawn digit.
* :mod:`striate.serve.inference` — :class:`ServedModel`: forward hooks, layer outputs, receptive
  fields (from the summary's propagation).
* :mod:`striate.serve.dense` — :class:`ServedDense`: a localisation, detection or segmentation run
  answering one drawn canvas with boxes or a mask (striate's image path and ``predict_dense``).
* :mod:`striate.serve.render` — activation maps and filters as PNG data URLs.
* :mod:`striate.serve.model_file` — the served model: a weights file (or its run folder), an ONNX
  file, or the default trained in seconds.

Flask is an optional extra: ``pip install striate[serve]``. Place in the layers: above training,
models and summary (it loads weights, trains the default model and reads receptive fields),
below cli.
"""
from .app import create_app
from .dense import ServedDense
from .inference import ServedModel
from .model_file import ModelFileError, default_model_path, default_served_model, load_served_model
from .preprocess import ImageError

__all__ = ["create_app", "ServedModel", "ServedDense", "load_served_model", "default_served_model",
           "default_model_path", "ModelFileError", "ImageError"]
