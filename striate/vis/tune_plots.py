"""The figures of a hyperparameter search: the optimisation history and the parameter importances."""
from __future__ import annotations

from ..atomic import atomic_open
from . import draw

_STATE_STYLE = {"complete": ("#1f77b4", "o", "complete"), "pruned": ("#ff7f0e", "x", "pruned (stopped early)"),
                "fail": ("#d62728", "v", "failed")}


def tune_history_figure(rows, metric: str = "validation accuracy"):
    """Each trial's value in the order the trials ran (dots: complete, crosses: pruned, at their last
    reported value), and the best value so far over the complete trials as a step line.

    Args:
        rows: the trial rows of :func:`striate.training.trial_rows` (``trial``, ``state``, ``value``).
        metric: the objective's name, for the axis.
    """
    plt = draw.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for state, (color, marker, label) in _STATE_STYLE.items():
        pts = [(r["trial"], r["value"]) for r in rows if r["state"] == state and r["value"] is not None]
        if pts:
            ax.scatter(*zip(*pts), color=color, marker=marker, s=46, label=label, zorder=3)
    best, steps = None, []
    for r in sorted(rows, key=lambda r: r["trial"]):
        if r["state"] == "complete" and r["value"] is not None:
            best = r["value"] if best is None else max(best, r["value"])
        if best is not None:
            steps.append((r["trial"], best))
    if steps:
        ax.step(*zip(*steps), where="post", color="#2ca02c", lw=2, label=f"best so far ({best:.4f})")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("optimisation history")
    ax.grid(alpha=0.3)
    if rows:
        ax.set_xticks(sorted({r["trial"] for r in rows})[:: max(1, len(rows) // 15)])
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    return fig


def importances_figure(importances: dict):
    """A horizontal bar per parameter: its share of the objective's variance (fANOVA), largest on top."""
    plt = draw.pyplot()
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.55 * max(1, len(items))))
    bars = ax.barh([k for k, _ in items], [v for _, v in items], color="#1f77b4")
    for bar, (_, v) in zip(bars, items):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{v:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("importance (share of the variance of the objective, fANOVA)")
    ax.set_title("parameter importances")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def save_plot(fig, path) -> None:
    """Write a matplotlib figure as a PNG file, atomically, and close it."""
    plt = draw.pyplot()
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
    finally:
        plt.close(fig)
