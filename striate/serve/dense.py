"""A localiser, detector or segmenter behind the page: draw several digits anywhere, see boxes or a mask.

:class:`ServedDense` holds a model trained by ``striate train`` for localisation, detection or
segmentation (its weights file records ``meta["task"]``) and answers one drawn canvas with what
``striate predict`` would print for the same picture:

* the canvas is prepared by striate's one image path (:func:`striate.data.images.prepare`, mode
  ``"resize"``): the whole canvas is resized to the model's input (Pillow bilinear, which averages
  when it shrinks, as the training canvases' digits were averaged when they were scaled), its
  transparency laid over a plain ground, inverted by the ``invert="auto"`` rule when the run learnt
  the other shade, and a blank canvas refused;
* the prediction is :func:`striate.training.dense_run.predict_dense` with the run's recorded
  standardisation and decoding; boxes come back in the model's pixels and are scaled to the
  canvas's pixels here, a mask is sent at the model's size and stretched by the page.

The page draws light on dark with a pen as wide as the training canvases' strokes are, relative to
the canvas (:data:`STROKE_FRACTION`), its edge as soft (:data:`SOFT_FRACTION`), so that a drawn
digit looks to the model like the ones it learnt.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from ..data import images
from . import render

DENSE_TASKS = ("localisation", "detection", "segmentation")
MIN_SCORE = 0.3   # boxes shown by default: the threshold of `striate predict --out` pictures
# Pen width as a fraction of the canvas side. Measured on digits_anywhere: its strokes are 3.3 px
# wide on the 64 px canvases (twice area over perimeter of the pixels at half ink, 500 canvases),
# and a 20 px pen on a 384 px canvas, resized to 64 px as the page's canvas is, measures the same.
STROKE_FRACTION = 20 / 384
# The pen's edge is soft, a Gaussian blur of this fraction of the side (4 px on 384 px, 2/3 of a pixel
# of a 64 px canvas; the peak stays full ink): the training digits are small pictures enlarged
# bilinearly, whose edges ramp over a few canvas pixels. Measured with a detector trained 8 epochs
# on digits_anywhere and four digits drawn by a script, the "4" scores 0.61 with it, 0.43 without,
# the "1" 0.37 rather than 0.27; a segmenter finds six times more of the "4"'s pixels.
SOFT_FRACTION = 4 / 384
# The side of the training canvases' digits, as a fraction of the canvas: 17 to 27 px tall (10th
# to 90th percentile of the boxes) on 64 px; the page suggests this size.
DIGIT_FRACTION = (0.27, 0.42)


def class_colours(n: int, offset: int = 0) -> list:
    """``n`` colours ``"#rrggbb"``, the ones ``striate predict --out`` draws with (class ``i`` gets
    palette entry ``i + offset``; masks use ``offset=-1``: their value 0 is the background)."""
    from ..vis.dense import class_colour

    return ["#%02x%02x%02x" % class_colour(i + offset) for i in range(n)]


class ServedDense:
    """A dense model (localisation, detection, segmentation) ready for the page.

    Args:
        model: the built :class:`striate.nn.Module`.
        meta: the description ``striate train`` stored with the weights (``task``, ``input_shape``,
            ``class_names``, ``mask_class_names``, ``preprocess``).
        name: the model's name for the page.
        source: one line saying where the weights came from.

    Example::

        >>> served = ServedDense(model, meta)                        # doctest: +SKIP
        >>> served.run(open("digits.png", "rb").read())["boxes"][0]  # doctest: +SKIP
        {'box': [40.5, 12.0, 98.2, 120.7], 'class': '7', 'index': 7, 'score': 0.91}
    """

    def __init__(self, model, meta: dict, name: str | None = None, source: str = ""):
        task = meta.get("task")
        if task not in DENSE_TASKS:
            raise ValueError(f"ServedDense serves {', '.join(DENSE_TASKS)} models. Received: task={task!r}.")
        shape = meta.get("input_shape")
        if not shape or len(shape) != 3:
            raise ValueError(f"the model's description must give input_shape (height, width, channels). "
                             f"Received: input_shape={shape!r}.")
        pre = meta.get("preprocess")
        if not isinstance(pre, dict) or pre.get("mean") is None or pre.get("std") is None:
            raise ValueError("the model's description must record its standardisation (meta['preprocess'] "
                             "with 'mean' and 'std'), as striate train writes it.")
        self.model, self.meta, self.task = model, meta, task
        self.input_shape = tuple(int(s) for s in shape)
        self.class_names = [str(c) for c in meta.get("class_names") or []]
        self.mask_class_names = [str(c) for c in meta.get("mask_class_names") or []]
        if task == "segmentation" and not self.mask_class_names:
            raise ValueError("a segmentation model's description must name its mask classes "
                             "(meta['mask_class_names']).")
        if task != "segmentation" and not self.class_names:
            raise ValueError(f"a {task} model's description must name its classes (meta['class_names']).")
        self.name = name or (meta.get("model") or {}).get("name") or type(model).__name__
        self.source = source
        self._lock = threading.Lock()   # one forward at a time: layers keep per-call state
        model.eval()

    # ------------------------------------------------------------------------------------ one canvas
    def prepare(self, picture, invert="auto") -> np.ndarray:
        """The picture as the model sees it: float32 ``input_shape`` in [0, 1] (see the module docstring)."""
        return images.prepare(picture, self.input_shape, meta=self.meta, invert=invert, mode="resize",
                              name="the image")

    def run(self, picture, invert="auto", min_score: float = MIN_SCORE) -> dict:
        """Boxes or a mask for one picture (PIL image or bytes), in its own pixels.

        Returns:
            dict with ``task``, ``width``, ``height`` (the picture's), ``input`` (PNG data URL of what
            the model sees) and ``compute_ms``; then for localisation and detection ``boxes``: per box
            ``{"box": [x0, y0, x1, y1] in the picture's pixels, "class", "index", "score"}``, best first,
            those of score >= ``min_score`` (localisation: the one box); for segmentation ``mask``
            (RGBA PNG data URL at the model's size: each class in its colour, background transparent),
            ``mask_shape`` and ``present`` (``{"class", "index", "fraction"}`` of the pixels, largest first).
        """
        from ..training.dense_run import predict_dense

        img = images.open_image(picture, name="the image") if isinstance(picture, (bytes, bytearray)) else picture
        width, height = img.size
        x = self.prepare(img, invert=invert)
        t0 = time.perf_counter()
        u8 = np.round(x * 255).astype(np.uint8)   # predict_dense takes pictures as uint8, like a file
        with self._lock:
            pred = predict_dense(self.model, self.meta, [u8])[0]
        out = {"task": self.task, "width": width, "height": height, "input": render.input_image(x)}
        H, W = self.input_shape[:2]
        if self.task == "segmentation":
            out.update(self._mask(np.asarray(pred)))
        else:
            keep = np.ones(len(pred["scores"]), bool) if self.task == "localisation" else pred["scores"] >= min_score
            scale = np.array([width / W, height / H, width / W, height / H])   # model pixels -> picture pixels
            out["boxes"] = [{"box": [round(float(v), 2) for v in b * scale], "class": self.class_names[int(c)],
                             "index": int(c), "score": round(float(s), 4)}
                            for b, s, c in zip(pred["boxes"][keep], pred["scores"][keep], pred["classes"][keep])]
        out["compute_ms"] = round(1000 * (time.perf_counter() - t0), 2)
        return out

    def _mask(self, mask: np.ndarray) -> dict:
        """The mask ``(H, W)`` of class indices as the page shows it (see :meth:`run`)."""
        k = len(self.mask_class_names)
        lut = np.zeros((max(k, int(mask.max()) + 1), 4), np.uint8)
        for i, colour in enumerate(class_colours(k, offset=-1)):
            if i > 0:                                            # 0 is the background: transparent
                lut[i] = [int(colour[j:j + 2], 16) for j in (1, 3, 5)] + [255]
        counts = np.bincount(mask.reshape(-1), minlength=k)
        present = [{"class": self.mask_class_names[i], "index": int(i),
                    "fraction": round(float(counts[i] / mask.size), 4)}
                   for i in np.argsort(-counts, kind="stable") if 0 < i < k and counts[i] > 0]
        return {"mask": render.png_data_url(lut[mask]), "mask_shape": list(mask.shape), "present": present}

    # ------------------------------------------------------------------------------------ the model page
    def describe(self) -> dict:
        """What ``GET /api/model`` returns for a dense model: task, classes and their colours, input,
        parameters, and how to draw (pen width, the blur of its edge and the digits' size as fractions
        of the canvas side)."""
        seg = self.task == "segmentation"
        classes = self.mask_class_names if seg else self.class_names
        return {"name": self.name, "source": self.source, "task": self.task, "input_shape": list(self.input_shape),
                "classes": classes, "colours": class_colours(len(classes), offset=-1 if seg else 0),
                "total_params": int(self.model.num_parameters()), "dataset": self.meta.get("dataset"),
                "standardize": {"mean": list(self.meta["preprocess"]["mean"]),
                                "std": list(self.meta["preprocess"]["std"])},
                "stroke": STROKE_FRACTION, "soft": SOFT_FRACTION, "digit_size": list(DIGIT_FRACTION),
                "min_score": MIN_SCORE}
