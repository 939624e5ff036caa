"""Detection and segmentation against PyTorch: the CenterNet-style detector and the U-Net of the zoo,
timed with their PyTorch twins (``_torch_models.CenterNet`` / ``UNet``, same weights) in one run.

    python benchmarks/bench_dense.py                 # both models, batch 32, 64x64 canvases
    python benchmarks/bench_dense.py --repeat 3 --threads 2

A training step is what :func:`striate.training.fit` runs with a task: forward, the task's loss
(the detector's targets are encoded from boxes in NumPy on both sides, by the same code), backward
and SGD with momentum. Inference is a forward pass in evaluation mode without gradients. Both
frameworks get the same threads; PyTorch runs in both memory layouts (NCHW and channels-last) and
its faster one counts; each is timed in blocks of its own (``bench_core.measure``) and
throughput comes from the best run, so a burst of load from other processes inflates neither.
The ratio is striate's throughput over PyTorch's: 1.0 is parity, above 1 striate is faster.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _canvases(n, size, num_classes, seed=0):
    """Random bright rectangles on dark canvases: images, per-image boxes and classes, and masks."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, 1), dtype=np.float32) * 0.1
    masks = np.zeros((n, size, size), np.int64)
    targets = []
    for i in range(n):
        boxes, classes = [], []
        for _ in range(rng.integers(1, 5)):
            w, h = rng.integers(size // 8, size // 3, 2)
            x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
            c = int(rng.integers(num_classes))
            x[i, y0:y0 + h, x0:x0 + w] = 1.0
            masks[i, y0:y0 + h, x0:x0 + w] = c + 1
            boxes.append([x0, y0, x0 + w, y0 + h])
            classes.append(c)
        targets.append({"boxes": np.array(boxes, float), "classes": np.array(classes)})
    return x, targets, masks


def _torch_centernet_loss(torch, out, t, k):
    """The loss of ``CenterNetDetection`` in PyTorch, on targets encoded by striate's task."""
    p = torch.sigmoid(out[:, :k]).clamp(1e-6, 1 - 1e-6)
    y = torch.from_numpy(t["heatmap"].transpose(0, 3, 1, 2)).float()
    pos = (y == 1).float()
    focal = -(((1 - p) ** 2 * torch.log(p) * pos).sum() + ((1 - y) ** 4 * p ** 2 * torch.log(1 - p) * (1 - pos)).sum())
    m = torch.from_numpy(t["mask"].transpose(0, 3, 1, 2)).float()
    size = torch.from_numpy(t["size"].transpose(0, 3, 1, 2)).float()
    offset = torch.from_numpy(t["offset"].transpose(0, 3, 1, 2)).float()
    l1 = 0.5 * ((out[:, k:k + 2] - size).abs() * m).sum() + ((out[:, k + 2:] - offset).abs() * m).sum()
    return (focal + l1) / max(1.0, float(t["mask"].sum()))


def bench(name, batch, size, repeat, threads):
    import torch

    import striate as st
    from _torch_models import TWINS, copy_weights, to_torch_images
    from bench_core import measure
    from run import _limit_threads
    from striate.training.tasks import CenterNetDetection, Segmentation

    limiter = _limit_threads(threads, torch)  # noqa: F841  (holds the BLAS limit)
    k = 10
    s_model = getattr(st.models, name)(num_classes=k if name == "centernet" else k + 1, rng=0,
                                       input_shape=(size, size, 1))
    t_model = TWINS[name]().to(memory_format=torch.channels_last)
    copy_weights(s_model, t_model)
    x, targets, masks = _canvases(batch, size, k)
    tx = to_torch_images(x)
    task = CenterNetDetection(k) if name == "centernet" else Segmentation()
    tmasks = torch.from_numpy(masks)

    def t_loss(out):
        if name == "centernet":
            return _torch_centernet_loss(torch, out, task.encode(targets, (batch, out.shape[2], out.shape[3])), k)
        return torch.nn.functional.cross_entropy(out, tmasks, ignore_index=255)

    # the twins compute the same function (training mode: batch statistics)
    s_out = s_model(st.Tensor(x)).data
    t_out = t_model(tx).detach().permute(0, 2, 3, 1).numpy()
    err = float(np.abs(s_out - t_out).max() / max(np.abs(t_out).max(), 1e-6))
    s_loss, t_loss_v = float(task(s_model(st.Tensor(x)), targets if name == "centernet" else masks).data), \
        float(t_loss(t_model(tx)).detach())
    if err > 1e-3 or abs(s_loss - t_loss_v) > 1e-3 * max(1.0, abs(t_loss_v)):
        raise SystemExit(f"{name}: the twins differ (relative output error {err:.2e}, losses {s_loss} vs {t_loss_v})")

    s_opt = st.optim.SGD(s_model.parameters(), lr=0.01, momentum=0.9)
    y = targets if name == "centernet" else masks
    # PyTorch in both memory layouts; its faster one counts (channels-last is not always faster on
    # CPUs: transposed convs and concatenations can be slower in it)
    t_nchw = TWINS[name]()
    copy_weights(s_model, t_nchw)
    twins = [(t_model, tx), (t_nchw, tx.contiguous())]

    def s_step():
        s_opt.zero_grad()
        loss = task(s_model(st.Tensor(x)), y)
        loss.backward()
        s_opt.step()

    def t_stepper(model, images):
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad()
            loss = t_loss(model(images))
            loss.backward()
            opt.step()
        return step

    s_train, *t_train = measure([s_step] + [t_stepper(m, i) for m, i in twins], repeat=repeat, warmup=1, rounds=2)
    s_model.eval()
    for m, _ in twins:
        m.eval()

    def s_infer():
        with st.no_grad():
            s_model(st.Tensor(x))

    def t_inferer(model, images):
        def infer():
            with torch.no_grad():
                model(images)
        return infer

    s_inf, *t_inf = measure([s_infer] + [t_inferer(m, i) for m, i in twins], repeat=repeat, warmup=1, rounds=2)
    best = lambda timings: min(t.best for t in timings)  # noqa: E731
    row = dict(model=name, batch=batch, image=size, threads=threads, twin_rel_error=err,
               train_striate_ips=batch / s_train.best, train_torch_ips=batch / best(t_train),
               infer_striate_ips=batch / s_inf.best, infer_torch_ips=batch / best(t_inf),
               torch_layout_train="channels_last" if t_train[0].best <= t_train[1].best else "nchw",
               torch_layout_infer="channels_last" if t_inf[0].best <= t_inf[1].best else "nchw")
    row["train_ratio"] = row["train_striate_ips"] / row["train_torch_ips"]
    row["infer_ratio"] = row["infer_striate_ips"] / row["infer_torch_ips"]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["centernet", "unet"], choices=["centernet", "unet"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=20,
                        help="timed runs of each step (best counts; a few runs after a pause measure waking up)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows = [bench(m, args.batch, args.image, args.repeat, args.threads) for m in args.models]
    print(f"{'model':<10} {'train st/s':>10} {'torch/s':>8} {'ratio':>6}   "
          f"{'infer st/s':>10} {'torch/s':>8} {'ratio':>6}")
    for r in rows:
        print(f"{r['model']:<10} {r['train_striate_ips']:>10.1f} {r['train_torch_ips']:>8.1f} "
              f"{r['train_ratio']:>6.2f}   {r['infer_striate_ips']:>10.1f} {r['infer_torch_ips']:>8.1f} "
              f"{r['infer_ratio']:>6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
