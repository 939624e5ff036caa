"""TensorBoard: a :func:`fit` callback that writes TensorBoard event files (with tensorboardX).

    >>> st.training.fit(model, train, val, epochs=10, optimizer=opt,
    ...                 callbacks=[st.training.TensorBoard("runs/tb")])
    $ tensorboard --logdir runs/tb

The writer library is the ``tensorboard`` extra (``pip install 'striate[tensorboard]'``), imported
only when a TensorBoard callback is made.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..nn import Conv2D
from ..tensor import Tensor, no_grad
from ..validation import check_int_at_least
from .callbacks import Callback

EXTRA = "pip install 'striate[tensorboard]'"
LOCK_NAME = ".striate-tensorboard.lock"

# epoch logs -> TensorBoard tags: loss and accuracy of train and validation share one chart each
SCALAR_TAGS = {"loss": "loss/train", "val_loss": "loss/val", "acc": "accuracy/train", "val_acc": "accuracy/val",
               "lr": "learning_rate"}


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError(f"TensorBoard logging needs tensorboardX: {EXTRA}") from None
    return SummaryWriter


def _unit(a) -> np.ndarray:
    """Scale to [0, 1] (a constant map becomes mid-grey)."""
    a = np.asarray(a, np.float64)
    low, high = a.min(), a.max()
    return np.full(a.shape, 0.5) if high <= low else (a - low) / (high - low)


def _tile(maps, border: int = 1) -> np.ndarray:
    """``(n, h, w)`` or ``(n, h, w, 3)`` maps, each scaled to [0, 1] on its own, in a near-square grid
    on a white background: ``(rows * (h + border) - border, cols * (w + border) - border[, 3])``."""
    maps = np.stack([_unit(m) for m in maps])
    n, h, w = maps.shape[:3]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.ones((rows * (h + border) - border, cols * (w + border) - border) + maps.shape[3:])
    for i, m in enumerate(maps):
        r, c = divmod(i, cols)
        grid[r * (h + border):r * (h + border) + h, c * (w + border):c * (w + border) + w] = m
    return grid


def _enlarge(a, min_size: int = 96) -> np.ndarray:
    """Nearest-neighbour enlargement so that 5x5 kernels are visible in TensorBoard's image panel."""
    k = max(1, min_size // max(a.shape[:2]))
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def filter_image(w) -> np.ndarray:
    """A conv kernel ``(kh, kw, in, out)`` as one image: colour tiles for 3 input channels, else
    each filter averaged over its inputs. Returns ``(H, W)`` or ``(H, W, 3)`` in [0, 1]."""
    w = np.asarray(w)
    maps = np.moveaxis(w, 3, 0)                                          # (out, kh, kw, in)
    maps = maps if w.shape[2] == 3 else maps.mean(axis=3)                # (out, kh, kw[, 3])
    return _enlarge(_tile(maps))


class _FolderLock:
    """An exclusive lock on a log folder (``fcntl.flock`` on a lock file): held by one writer at a
    time, released on :meth:`release` or when its process ends."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, LOCK_NAME)
        self.file = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): one writer per folder is then the user's to keep
            return
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise ValueError(f"TensorBoard: another writer is already logging into {os.path.dirname(self.path)!r} "
                             f"({holder}); two writers would interleave their events. Choose another log_dir, or "
                             "wait for that run to end.") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        self.file = f

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing the file drops the flock
            self.file = None


class TensorBoard(Callback):
    """Write a run into TensorBoard event files: scalars, images and histograms.

    Per epoch (step = epoch number, from 1): the scalars ``loss/train``, ``loss/val``,
    ``accuracy/train``, ``accuracy/val`` and ``learning_rate``; every ``histogram_freq`` epochs a
    histogram of every parameter (``weights/<name>``) and of its gradient from the epoch's last step
    (``gradients/<name>``); every ``image_freq`` epochs the first conv layer's filters
    (``filters/<layer>``) and the feature maps of the conv layers for one probe image
    (``activations/<layer>``, at most ``max_activation_layers`` layers). With ``update_freq=N`` the
    loss of every N-th step is also written (``loss/step``, step = steps so far).

    Only one writer may log into a folder at a time: a second TensorBoard on the same ``log_dir``
    (in this process or another) is refused with a ValueError while the first is open.

    Args:
        log_dir: the folder of the event files (created if needed).
        histogram_freq: epochs between histograms; 0 writes none.
        image_freq: epochs between images; 0 writes none.
        probe: one preprocessed image ``(h, w, c)`` whose activations are shown; default the first
            image of the validation data, if ``fit`` has any (the training data are not read ahead,
            so that the callback does not change their shuffling).
        update_freq: ``'epoch'``, or N to also write the loss of every N-th step.
        max_activation_layers: how many conv layers' feature maps to show (the first ones).

    Example::

        >>> tb = st.training.TensorBoard("runs/tb", histogram_freq=1)
        >>> st.training.fit(model, train, val, epochs=5, callbacks=[tb])
    """

    def __init__(self, log_dir, histogram_freq: int = 1, image_freq: int = 1, probe=None,
                 update_freq="epoch", max_activation_layers: int = 4):
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise TypeError(f"TensorBoard: log_dir must be a folder path. Received: log_dir={log_dir!r}.")
        self.histogram_freq = check_int_at_least(histogram_freq, "histogram_freq", 0, owner="TensorBoard")
        self.image_freq = check_int_at_least(image_freq, "image_freq", 0, owner="TensorBoard")
        self.max_activation_layers = check_int_at_least(max_activation_layers, "max_activation_layers", 0,
                                                        owner="TensorBoard")
        if update_freq != "epoch":
            update_freq = check_int_at_least(update_freq, "update_freq", 1, owner="TensorBoard")
        self.update_freq = update_freq
        if probe is not None:
            probe = np.asarray(probe.data if isinstance(probe, Tensor) else probe)
            if probe.ndim == 4 and probe.shape[0] == 1:
                probe = probe[0]
            if probe.ndim != 3:
                raise ValueError(f"TensorBoard: probe must be one image (height, width, channels). "
                                 f"Received: shape {probe.shape}.")
        self.probe = probe
        self.log_dir = os.fspath(log_dir)
        self._writer_class = _summary_writer()
        if os.path.exists(self.log_dir) and not os.path.isdir(self.log_dir):
            raise ValueError(f"TensorBoard: log_dir {self.log_dir!r} is a file; give a folder.")
        os.makedirs(self.log_dir, exist_ok=True)
        self._lock = _FolderLock(self.log_dir)
        self._lock.acquire()  # refuse a second writer now, before any training
        self.writer = None
        self._steps = 0

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, run) -> None:
        super().on_train_begin(run)
        if self._lock.file is None:  # a second fit() with the same callback
            self._lock.acquire()
        if self.writer is None:
            self.writer = self._writer_class(self.log_dir)
        self._steps = 0
        if self.probe is None and self.image_freq and run.val is not None:
            for xb, _ in run.val:  # evaluation data: not shuffled, reading them changes nothing
                xb = np.asarray(xb.data if isinstance(xb, Tensor) else xb)
                self.probe = (xb[0].astype(np.float32) / 255.0) if xb.dtype == np.uint8 else xb[0]
                break

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self._steps += 1
        if self.update_freq != "epoch" and self._steps % self.update_freq == 0:
            self.writer.add_scalar("loss/step", logs["loss"], self._steps)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        step = epoch + 1
        for key, tag in SCALAR_TAGS.items():
            if key in logs and logs[key] is not None:
                self.writer.add_scalar(tag, float(logs[key]), step)
        model = self.run.model
        if self.histogram_freq and step % self.histogram_freq == 0:
            for name, p in model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", np.asarray(p.data, np.float64), step)
                if p.grad is not None:
                    self.writer.add_histogram(f"gradients/{name}", np.asarray(p.grad, np.float64), step)
        if self.image_freq and step % self.image_freq == 0:
            self._write_images(model, step)
        self.writer.flush()

    def on_train_end(self) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close the event file and release the folder (``fit`` does this at the end)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self._lock.release()

    # ------------------------------------------------------------------ images
    def _write_images(self, model, step: int) -> None:
        convs = [(name, m) for name, m in model.named_modules() if isinstance(m, Conv2D) and "w" in m._parameters]
        if not convs:
            return
        name, first = convs[0]
        self._add_image(f"filters/{name}", filter_image(first.w.data), step)
        if self.probe is None or not self.max_activation_layers:
            return
        maps, handles = {}, []
        for name, m in convs[:self.max_activation_layers]:
            handles.append(m.register_forward_hook(lambda mod, args, out, name=name: maps.__setitem__(name, out.data)))
        was_training = model.training
        model.eval()
        try:
            with no_grad():
                model(Tensor(np.asarray(self.probe)[None]))
        finally:
            model.train(was_training)
            for h in handles:
                h.remove()
        for name, a in maps.items():                          # a: (1, h, w, c)
            self._add_image(f"activations/{name}", _enlarge(_tile(np.moveaxis(a[0], 2, 0)), 192), step)

    def _add_image(self, tag, image, step) -> None:
        self.writer.add_image(tag, image.astype(np.float32), step, dataformats="HWC" if image.ndim == 3 else "HW")
