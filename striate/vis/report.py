"""One self-contained HTML page about a training run: curves, confusion matrix, the worst-classified
test images, first-layer filters and one image's activations. PNGs are embedded as data URIs; the
page needs no network and no JavaScript."""
from __future__ import annotations

import base64
import html

import numpy as np

from . import draw
from .filters import activation_grid, activations, default_activation_layers, filter_grid, first_conv_name

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px auto; max-width: 1100px;
       color: #1d1d1f; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table.kv td { padding: 2px 14px 2px 0; } table.kv td:first-child { color: #666; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; text-align: center; font-size: 0.85em; }
figure img { image-rendering: pixelated; border: 1px solid #ccc; }
.bad { color: #b00020; } .note { color: #666; font-size: 0.9em; }
"""


def _img(png: bytes, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{base64.b64encode(png).decode()}">'


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
    from .. import functional as F
    from ..tensor import Tensor, no_grad
    from ._model import inspecting

    names = list((meta or {}).get("class_names") or [str(i) for i in range(len(metrics.get("confusion_matrix") or []))])
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>striate run report</h1><p>{html.escape(title)}</p>"]
    kv = [("model", metrics.get("model")), ("data set", metrics.get("dataset")),
          ("test accuracy", f"{100 * metrics['test_accuracy']:.2f}%" if metrics.get("test_accuracy") is not None else None),
          ("test loss", f"{metrics['test_loss']:.4f}" if metrics.get("test_loss") is not None else None),
          ("best validation accuracy",
           f"{100 * metrics['best_val_accuracy']:.2f}%" if metrics.get("best_val_accuracy") is not None else None),
          ("epochs", metrics.get("epochs")), ("parameters", f"{metrics['params']:,}" if metrics.get("params") else None),
          ("wall time", f"{metrics['seconds']} s" if metrics.get("seconds") is not None else None)]
    parts.append("<table class='kv'>" + "".join(f"<tr><td>{k}</td><td>{html.escape(str(v))}</td></tr>"
                                                for k, v in kv if v is not None) + "</table>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]

    if log_rows:
        parts.append("<h2>Training curves</h2>" + _img(_curves_png(log_rows), "loss and accuracy per epoch"))
    if metrics.get("confusion_matrix"):
        parts.append("<h2>Confusion matrix (test set)</h2>"
                     + _img(_confusion_png(metrics["confusion_matrix"], names), "confusion matrix"))

    if model is not None and x_test is not None and len(x_test):
        shown = x_test if x_shown is None else x_shown
        with inspecting(model), no_grad():
            probs = np.concatenate([F.softmax(model(Tensor(x_test[i:i + 256]))).data
                                    for i in range(0, len(x_test), 256)])
        y = np.asarray(y_test)
        p_true = probs[np.arange(len(y)), y]
        order = np.argsort(p_true, kind="stable")[:worst]
        cards = []
        for i in order:
            top = np.argsort(-probs[i])[:3]
            lines = "<br>".join(f"{html.escape(str(names[k]) if k < len(names) else str(k))} {probs[i, k]:.2f}"
                                for k in top)
            wrong = " class='bad'" if top[0] != y[i] else ""
            cards.append(f"<figure>{_img(_array_png(draw.as_rgb(shown[i])), f'test image {i}')}<figcaption{wrong}>"
                         f"#{i} true {html.escape(str(names[y[i]]))}<br>{lines}</figcaption></figure>")
        parts.append(f"<h2>The {len(order)} worst-classified test images</h2>"
                     "<p class='note'>lowest probability of the true class first; top-3 classes below each</p>"
                     f"<div class='grid'>{''.join(cards)}</div>")

    if model is not None:
        shape = tuple(meta["input_shape"])
        try:
            layer = first_conv_name(model, shape)
        except ValueError:
            layer = None
        if layer is not None:
            module = dict(model.named_modules())[layer]
            grid = filter_grid(module)
            kh, kw, cin, cout = module.w.data.shape
            parts.append(f"<h2>First-layer filters ({layer}: {cout} of {kh}x{kw}x{cin})</h2>"
                         + _img(_array_png(grid, 300), "first-layer filters"))
        if x_test is not None and len(x_test):  # probs, y, shown: from the worst-images section
            # the first test image the model gets right: its maps show what the model does when it works
            right = np.nonzero(probs.argmax(axis=1) == y)[0]
            k = int(right[0]) if len(right) else 0
            names_l = default_activation_layers(model, shape)
            acts = activations(model, x_test[k], names_l)
            figs = [f"<figure>{_img(_array_png(draw.as_rgb(shown[k]), 128), f'test image {k}')}<figcaption>"
                    f"test image #{k} (true {html.escape(str(names[int(y[k])]))}, "
                    f"p = {probs[k, y[k]]:.2f})</figcaption></figure>"]
            for n, a in acts.items():
                if a.ndim == 3:
                    factor = max(1, 32 // a.shape[0])
                    figs.append(f"<figure>{_img(_array_png(activation_grid(draw.upsample_nearest(a, factor), ncols=16), 64), n)}"
                                f"<figcaption>{html.escape(n)}: {a.shape[2]} maps of {a.shape[0]}x{a.shape[1]}</figcaption></figure>")
            parts.append(f"<h2>Activations of one test image</h2><div class='grid'>{''.join(figs)}</div>")
    parts.append("<p class='note'>written by striate report</p></body></html>\n")
    return "\n".join(parts)
