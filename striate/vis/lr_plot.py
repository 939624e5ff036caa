"""The learning-rate range test's figure: loss against rate on a log axis, the suggestion marked."""
from __future__ import annotations

from ..atomic import atomic_open
from . import draw


def lr_find_figure(result, title: str | None = None):
    """A matplotlib figure of an :class:`~striate.training.LRFindResult`: the raw loss per step (light),
    the smoothed loss (dark), the suggested rate (a dashed line and a dot) and the minimum.

    Example::

        >>> fig = st.vis.lr_find_figure(st.training.lr_find(model, loader))
        >>> fig.savefig("lr_find.png")
    """
    plt = draw.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(result.rates, result.losses, color="#9ecae1", lw=1, label="loss per step")
    ax.plot(result.rates, result.smoothed, color="#08519c", lw=2, label="smoothed loss")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    # keep the axis on the interesting part: a diverging tail would squash the rest
    top = max(result.smoothed[0], result.smoothed.min()) * 1.6
    ax.set_ylim(max(0.0, min(result.losses.min(), result.smoothed.min()) * 0.9), top)
    ax.axvline(result.min_rate, color="gray", ls=":", lw=1, label=f"minimum at {result.min_rate:.3g}")
    if result.suggestion is not None:
        ax.axvline(result.suggestion, color="#d62728", ls="--", lw=1.5,
                   label=f"suggested {result.suggestion:.3g} ({result.rule})")
        at = min(range(len(result.rates)), key=lambda i: abs(result.rates[i] - result.suggestion))
        ax.plot([result.rates[at]], [result.smoothed[at]], "o", color="#d62728", ms=7)
    ax.set_title(title or "learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    return fig


def save_lr_find_plot(result, path, title: str | None = None) -> None:
    """Write :func:`lr_find_figure` as a PNG file, atomically."""
    plt = draw.pyplot()
    fig = lr_find_figure(result, title)
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
    finally:
        plt.close(fig)
