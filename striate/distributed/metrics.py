"""Metrics of the whole data set from every rank's share: sharded evaluation and its reduction."""
from __future__ import annotations

import numbers

import numpy as np

from .comm import Communicator, get_comm
from .sharding import ShardedLoader, shard

__all__ = ["reduce_metrics", "evaluate"]


def reduce_metrics(metrics: dict | None, count=None, comm: Communicator | None = None) -> dict:
    """Combine every rank's ``metrics`` into those of all their data (the same dict on every rank).

    Means (loss, accuracy, ...) are averaged weighted by each rank's number of samples, counts and
    confusion matrices are summed, and per-class accuracies are recomputed from the summed matrix.

    Args:
        metrics: this rank's dict (e.g. from :func:`striate.training.evaluate`), or None for a rank
            that saw no data.
        count: the number of samples behind ``metrics`` (default ``metrics["num_samples"]``).
        comm: the communicator (default: :func:`~striate.distributed.init`'s).

    Example::

        >>> logs = reduce_metrics({"loss": 0.3, "acc": 0.9}, count=64)   # over every rank's 64
    """
    comm = comm or get_comm()
    if metrics is not None and count is None:
        if "num_samples" not in metrics:
            raise ValueError("reduce_metrics: give count= (samples behind the metrics) or a 'num_samples' entry.")
        count = metrics["num_samples"]
    if metrics is None:
        count = 0
    if comm.size == 1:
        return dict(metrics) if metrics is not None else {}
    gathered = [(w, m) for w, m in comm.allgather_object((count, metrics)) if m is not None and w > 0]
    if not gathered:
        return {}
    total = sum(w for w, _ in gathered)
    first = gathered[0][1]
    out = {}
    for key, value in first.items():
        values = [m[key] for _, m in gathered]
        if key == "num_samples":
            out[key] = int(sum(values))
        elif key == "confusion_matrix":
            out[key] = np.sum(values, axis=0)
        elif key == "per_class_accuracy":
            continue  # from the summed confusion matrix, below
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[key] = float(sum(w * v for (w, _), v in zip(gathered, values)) / total)
        else:
            out[key] = value
    if "per_class_accuracy" in first and "confusion_matrix" in out:
        cm = out["confusion_matrix"]
        support = cm.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["per_class_accuracy"] = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    return out


def evaluate(model, data, comm: Communicator | None = None, **kwargs) -> dict:
    """:func:`striate.training.evaluate` over every rank's share of ``data``, reduced over the ranks.

    Each rank evaluates about 1/R of the images; every rank gets the metrics of the whole data set.

    Args:
        model: the Module (the same weights on every rank).
        data: a :class:`~striate.data.DataLoader` (sharded here for evaluation) or a
            :class:`ShardedLoader` made with ``shard(loader, evaluation=True)``.
        comm: the communicator (default: :func:`~striate.distributed.init`'s).
        **kwargs: passed to :func:`striate.training.evaluate` (``loss``, ``tta``, ``details``).

    Returns:
        The dict of :func:`striate.training.evaluate`, for all of ``data``.
    """
    from ..training import evaluate as evaluate_local

    comm = comm or get_comm()
    if not isinstance(data, ShardedLoader):
        data = shard(data, comm, evaluation=True)
    result = evaluate_local(model, data, **kwargs) if len(data) else None
    return reduce_metrics(result, comm=comm)
