"""DataLoader: shuffled mini-batches of in-memory arrays, converted to float and augmented per batch.

Randomness and resuming. All randomness comes from one Generator, ``loader.rng``. At the start of
each epoch the loader draws, from ``rng``, the epoch's permutation and one seed for the epoch's
augmentation generator; every transform call of that epoch draws from the latter. So

* two loaders built with the same seed yield identical batches;
* ``rng`` advances by a fixed amount per epoch, whatever the transforms do, so ``state_dict()`` taken
  at any point of epoch k, restored later with ``load_state_dict``, reproduces epoch k+1 exactly
  (checkpoint between epochs for a bit-exact resume);
* the optional prefetch thread uses only the epoch's own generator, so it never races the model
  (dropout, ...) for draws, even when both use the default generator.
"""
from __future__ import annotations

import copy
import queue
import threading

import numpy as np

from ..random import check_random_state
from ..validation import check_int

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over ``(xb, yb)`` mini-batches of arrays.

    Args:
        x: inputs, first axis = samples; images NHWC ``(N, H, W, C)``. uint8 is divided by 255,
            floating point is kept as is; both come out as ``dtype``.
        y: labels ``(N,)`` (int64 out), or ``None`` to yield ``(xb, None)`` (prediction).
        batch_size: samples per batch.
        shuffle: a fresh permutation every epoch (else the stored order).
        transform: a callable ``t(xb, rng) -> xb`` applied to each float batch (see
            :mod:`striate.data.transforms`).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        rng: a Generator, an int seed or ``None`` (the default generator; see :mod:`striate.random`).
        prefetch: prepare the next batch in a background thread while the current one is used.
            NumPy releases the GIL in copies and arithmetic, so loading overlaps the model's GEMMs.
        dtype: the floating dtype of ``xb`` (float32; float64 for gradient checks).

    Shape:
        ``xb``: ``(batch_size, *x.shape[1:])`` (the transform may change it); ``yb``: ``(batch_size,)``.

    Example:
        >>> loader = DataLoader(np.zeros((10, 8, 8, 1), np.uint8), np.arange(10), batch_size=4, rng=0)
        >>> len(loader), [xb.shape[0] for xb, yb in loader]
        (3, [4, 4, 2])
    """

    def __init__(self, x, y=None, batch_size: int = 128, shuffle: bool = True, transform=None,
                 drop_last: bool = False, rng=None, prefetch: bool = False, dtype=np.float32):
        x = np.asarray(x)
        if x.ndim < 1 or len(x) == 0:
            raise ValueError(f"x must hold at least one sample along its first axis. Received: shape {x.shape}.")
        if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"x must be uint8 images (0..255) or floating point. Received: dtype {x.dtype}. "
                f"Convert with x.astype(np.uint8) for 8-bit images or x.astype(np.float32) / scale."
            )
        if y is not None:
            y = np.asarray(y)
            if y.ndim != 1 or len(y) != len(x):
                raise ValueError(
                    f"y must be 1D with one label per sample of x ({len(x)}). Received: shape {y.shape}."
                )
            if not np.issubdtype(y.dtype, np.integer):
                raise TypeError(f"y must hold integer class labels. Received: dtype {y.dtype}.")
            y = y.astype(np.int64, copy=False)
        check_int(batch_size, "batch_size")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be a callable t(xb, rng). Received: {transform!r}.")
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise TypeError(f"dtype must be a floating dtype. Received: dtype={dtype!r}.")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last, self.prefetch = bool(shuffle), bool(drop_last), bool(prefetch)
        self.transform = transform
        self.dtype = np.dtype(dtype)
        self.rng = check_random_state(rng)

    # ------------------------------------------------------------------------------ sizes
    @property
    def num_samples(self) -> int:
        return len(self.x)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        full, rest = divmod(len(self.x), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    # ------------------------------------------------------------------------------ RNG state
    def state_dict(self) -> dict:
        """The generator's state (a plain dict, picklable/JSON-able); restoring it replays later epochs."""
        return {"rng": copy.deepcopy(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or "rng" not in state:
            raise ValueError(f"state must be a dict from DataLoader.state_dict(). Received: {state!r:.80}.")
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])

    # ------------------------------------------------------------------------------ batches
    def _plan(self):
        """Draw this epoch's order and augmentation generator (fixed use of self.rng per epoch)."""
        n = len(self.x)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        epoch_rng = np.random.default_rng(self.rng.integers(0, 2**63))
        stops = range(0, len(self) * self.batch_size, self.batch_size)
        return [order[i:i + self.batch_size] for i in stops], epoch_rng

    def _make_batch(self, idx: np.ndarray, epoch_rng):
        xb = self.x[idx]                                                   # a copy: fancy indexing
        if xb.dtype == np.uint8:
            xb = xb.astype(self.dtype)
            xb /= self.dtype.type(255)
        else:
            xb = xb.astype(self.dtype, copy=False)
        if self.transform is not None:
            xb = self.transform(xb, epoch_rng)
        yb = None if self.y is None else self.y[idx]
        return xb, yb

    def __iter__(self):
        batches, epoch_rng = self._plan()
        if not self.prefetch:
            for idx in batches:
                yield self._make_batch(idx, epoch_rng)
            return
        yield from self._prefetched(batches, epoch_rng)

    def _prefetched(self, batches, epoch_rng):
        # One producer thread, one batch ahead; it alone touches epoch_rng, in batch order.
        q: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():  # time out now and then, so an abandoned queue never blocks us
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce():
            try:
                for idx in batches:
                    if not put(("batch", self._make_batch(idx, epoch_rng))):
                        return
                put(("end", None))
            except BaseException as err:  # hand the error to the consumer
                put(("error", err))

        worker = threading.Thread(target=produce, name="striate-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                kind, item = q.get()
                if kind == "end":
                    break
                if kind == "error":
                    raise item
                yield item
        finally:
            stop.set()  # the consumer left early (break / exception): let the producer exit
            worker.join()

    def __repr__(self):
        return (f"DataLoader(num_samples={len(self.x)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, transform={self.transform!r}, prefetch={self.prefetch})")
