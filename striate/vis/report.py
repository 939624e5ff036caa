"""One self-contained HTML page about a training run: curves, confusion matrix, the worst-classified
test images, first-layer filters, one image's activations and the gradient flow per layer. PNGs are embedded as data URIs; the
page needs no network and no JavaScript.

The HTML lives in a template (``striate/vis/templates/report.html``, rendered with Jinja2, which
escapes every value); each section's data comes from one function here (:func:`summary_section`,
:func:`curves_section`, :func:`confusion_section`, :func:`worst_section`, :func:`filters_section`,
:func:`activations_section`, :func:`gradient_flow_section`)."""
from __future__ import annotations

import base64

import numpy as np

from ..optional import require
from . import draw
from .filters import activation_grid, activations, default_activation_layers, filter_grid, first_conv_name

TEMPLATE = "report.html"   # striate/vis/templates/report.html: all of the page's HTML


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _curves_png(log_rows) -> bytes:
    plt = draw.pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [int(float(r["epoch"])) for r in log_rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            vals = [r.get(prefix + key) for r in log_rows]
            if all(v not in (None, "") for v in vals):
                ax.plot(epochs, [float(v) for v in vals], style, ms=3, label=("validation " if prefix else "train ") + label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    png = draw.png_bytes(fig)
    plt.close(fig)
    return png


def _confusion_png(cm, names) -> bytes:
    plt = draw.pyplot()
    cm = np.asarray(cm)
    n = len(cm)
    fig, ax = plt.subplots(figsize=(0.42 * n + 2, 0.42 * n + 1.6))
    ax.imshow(cm, cmap="Blues")
    if n <= 20:
        top = cm.max() if cm.size else 0
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if cm[i, j] > top / 2 else "black")
        ax.set_xticks(range(n), [str(s)[:8] for s in names], rotation=90 if max(len(str(s)) for s in names) > 2 else 0)
        ax.set_yticks(range(n), [str(s)[:8] for s in names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    png = draw.png_bytes(fig)
    plt.close(fig)
    return png


def _array_png(a, min_size=96) -> bytes:
    Image, _, _ = draw.pil()
    return draw.png_bytes(Image.fromarray(draw.to_uint8(draw.enlarge(np.asarray(a), min_size))))


def _name(names, k) -> str:
    return str(names[k]) if k < len(names) else str(k)


# ------------------------------------------------------------------------ one function per section
def summary_section(title: str, metrics: dict, notes=()) -> dict:
    """The heading's facts: ``{"title", "rows": [(label, text)], "notes"}`` (rows without a value left out)."""
    def percent(key):
        return f"{100 * metrics[key]:.2f}%" if metrics.get(key) is not None else None

    rows = [("model", metrics.get("model")), ("data set", metrics.get("dataset")),
            ("test accuracy", percent("test_accuracy")),
            ("test loss", f"{metrics['test_loss']:.4f}" if metrics.get("test_loss") is not None else None),
            ("best validation accuracy", percent("best_val_accuracy")),
            ("epochs", metrics.get("epochs")), ("parameters", f"{metrics['params']:,}" if metrics.get("params") else None),
            ("wall time", f"{metrics['seconds']} s" if metrics.get("seconds") is not None else None)]
    return {"title": title, "rows": [(k, str(v)) for k, v in rows if v is not None], "notes": list(notes)}


def curves_section(log_rows) -> str | None:
    """Loss and accuracy per epoch (a PNG data URL), or None without a log."""
    return _data_url(_curves_png(log_rows)) if log_rows else None


def confusion_section(metrics: dict, names) -> str | None:
    """The test set's confusion matrix (a PNG data URL), or None when the run recorded none."""
    cm = metrics.get("confusion_matrix")
    return _data_url(_confusion_png(cm, names)) if cm else None


def worst_section(probs, y, shown, names, worst: int = 12) -> list:
    """The test images with the lowest probability of their true class, as cards:
    ``{"index", "image", "true", "top": [(class, p)] (top 3), "wrong"}``."""
    p_true = probs[np.arange(len(y)), y]
    cards = []
    for i in np.argsort(p_true, kind="stable")[:worst]:
        top = np.argsort(-probs[i])[:3]
        cards.append({"index": int(i), "image": _data_url(_array_png(draw.as_rgb(shown[i]))),
                      "true": _name(names, int(y[i])), "top": [(_name(names, int(k)), float(probs[i, k])) for k in top],
                      "wrong": bool(top[0] != y[i])})
    return cards


def filters_section(model, input_shape) -> dict | None:
    """The first conv layer's filters: ``{"layer", "count", "size", "image"}``, or None without a conv layer."""
    try:
        layer = first_conv_name(model, input_shape)
    except ValueError:
        return None
    module = dict(model.named_modules())[layer]
    kh, kw, cin, cout = module.w.data.shape
    return {"layer": layer, "count": cout, "size": f"{kh}x{kw}x{cin}",
            "image": _data_url(_array_png(filter_grid(module), 300))}


def activations_section(model, input_shape, x_test, probs, y, shown, names) -> list:
    """Every conv block's feature maps for the first test image the model gets right (what the model
    does when it works): ``[{"alt", "image", "caption"}]``, the input first."""
    right = np.nonzero(probs.argmax(axis=1) == y)[0]
    k = int(right[0]) if len(right) else 0
    acts = activations(model, x_test[k], default_activation_layers(model, input_shape))
    figs = [{"alt": f"test image {k}", "image": _data_url(_array_png(draw.as_rgb(shown[k]), 128)),
             "caption": f"test image #{k} (true {_name(names, int(y[k]))}, p = {probs[k, y[k]]:.2f})"}]
    for n, a in acts.items():
        if a.ndim == 3:
            factor = max(1, 32 // a.shape[0])
            grid = activation_grid(draw.upsample_nearest(a, factor), ncols=16)
            figs.append({"alt": n, "image": _data_url(_array_png(grid, 64)),
                         "caption": f"{n}: {a.shape[2]} maps of {a.shape[0]}x{a.shape[1]}"})
    return figs


def gradient_flow_section(model, x_test, y_test, batch: int = 64) -> dict | None:
    """Per-layer gradient norms of the trained model on the first ``batch`` test images (one forward and
    backward on a copy, in training mode as a training step computes it; see
    :func:`striate.vis.gradient_flow`): ``{"count", "image", "rows", "ratio", "loss"}``, ``rows`` one
    per weighted layer in forward order, ``ratio`` the first conv's |dL/dW| over the last conv's (None
    with fewer than two convs). None when the batch gives no gradient to measure."""
    from .gradient_flow import gradient_flow, gradient_flow_figure

    n = min(batch, len(x_test))
    try:
        flow = gradient_flow(model, x_test[:n], np.asarray(y_test[:n]))
    except ValueError:  # no Conv2D or Dense layer to measure
        return None
    fig = gradient_flow_figure(flow, title=f"trained model, {n} test images")
    png = draw.png_bytes(fig)
    draw.pyplot().close(fig)
    rows = [{"index": i + 1, "name": name, "type": flow.types[i], "weight": f"{flow.weight_norm[i]:.3g}",
             "grad": f"{flow.grad_norm[i]:.3g}", "out_grad": f"{flow.output_grad_norm[i]:.3g}",
             "step": f"{flow.grad_norm[i] / flow.weight_norm[i]:.2g}" if flow.weight_norm[i] > 0 else "-",
             "act_std": f"{flow.act_std[i]:.3g}", "zeros": f"{flow.act_zero[i]:.0%}"}
            for i, name in enumerate(flow.names)]
    convs = [g for g, t in zip(flow.grad_norm, flow.types) if t == "Conv2D"]
    ratio = float(convs[0] / convs[-1]) if len(convs) >= 2 and convs[-1] > 0 else None
    return {"count": n, "image": _data_url(png), "rows": rows, "ratio": ratio, "loss": flow.loss}


def _probabilities(model, x) -> np.ndarray:
    """Class probabilities ``(n, k)`` of the test images, 256 at a time."""
    from .. import functional as F
    from ..tensor import Tensor, no_grad
    from ._model import inspecting

    with inspecting(model), no_grad():
        return np.concatenate([F.softmax(model(Tensor(x[i:i + 256]))).data for i in range(0, len(x), 256)])


def render_report(sections: dict) -> str:
    """The page's HTML from its sections' data (the keys of :func:`build_report`'s sections), with
    Jinja2 (the ``viz`` extra); every value is HTML-escaped by the template."""
    jinja2 = require("jinja2", "viz", "the run report")
    env = jinja2.Environment(loader=jinja2.PackageLoader("striate.vis", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template(TEMPLATE).render(**sections)


def build_report(title: str, metrics: dict, log_rows: list, model=None, meta=None, x_test=None, y_test=None,
                 x_shown=None, notes=(), worst: int = 12) -> str:
    """The report page as an HTML string.

    Args:
        title: heading (e.g. the run folder).
        metrics: ``metrics.json`` of the run (test accuracy, confusion matrix, ...).
        log_rows: ``log.csv`` rows as dicts (epoch, loss, acc, val_loss, val_acc, ...).
        model, meta: the trained model and its weight file's meta (class names, input shape);
            without them the model sections are left out.
        x_test, y_test: preprocessed test images ``(n, h, w, c)`` and labels, for the worst-classified
            images and the activations; ``x_shown``: the same images as pixels in [0, 1].
        notes: lines shown under the heading (e.g. why a section is missing).
        worst: how many worst-classified images to show.
    """
    names = list((meta or {}).get("class_names") or [str(i) for i in range(len(metrics.get("confusion_matrix") or []))])
    sections = {"summary": summary_section(title, metrics, notes), "curves": curves_section(log_rows),
                "confusion": confusion_section(metrics, names), "worst": None, "filters": None, "activations": None,
                "gradients": None}
    if model is not None:
        shape = tuple(meta["input_shape"])
        sections["filters"] = filters_section(model, shape)
        if x_test is not None and len(x_test):
            shown = x_test if x_shown is None else x_shown
            probs, y = _probabilities(model, x_test), np.asarray(y_test)
            sections["worst"] = worst_section(probs, y, shown, names, worst)
            sections["activations"] = activations_section(model, shape, x_test, probs, y, shown, names)
            sections["gradients"] = gradient_flow_section(model, x_test, y)
    return render_report(sections)
