"""Latency of explaining one unit: what a click on a unit of the explanation panel costs.

ResNet-18 (random weights, the cost does not depend on them) at 224x224x3 by default. Times, over
``-n`` repeats (median and range):

* ``explain_unit`` alone, forward pass included (a click on a new image);
* ``record_forward``: the recorded forward pass of one image (every layer's input and output kept);
* ``explain_unit`` given that record, for units of an early conv, a residual sum, a late conv and the
  logits (a further click on the same image);
* ``explain_gradient`` (forward, backward, the unit's weight gradients), and per unit given a
  ``record_backward`` of the image and class.

    python benchmarks/explain_latency.py
    python benchmarks/explain_latency.py --model resnet20 --size 32 -n 20
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

UNITS = {"resnet18": [("conv1", (60, 50, 5)), ("layer1.0.relu2", (20, 20, 3)), ("layer4.1.conv2", (3, 3, 300)),
                      ("fc", (7,))],
         "resnet20": [("conv1", (10, 10, 5)), ("layer1.0.relu2", (5, 5, 3)), ("layer3.2.conv2", (3, 3, 30)), ("fc", (7,))]}


def timed(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def show(what, times, scale=1.0, unit="s"):
    print(f"{what:<44} median {statistics.median(times) * scale:8.3f} {unit}   "
          f"range {min(times) * scale:.3f}-{max(times) * scale:.3f} {unit}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18", choices=sorted(UNITS))
    parser.add_argument("--size", type=int, default=224, help="input height and width (224)")
    parser.add_argument("-n", type=int, default=5, help="repeats (5)")
    args = parser.parse_args(argv)

    import numpy as np

    import striate as st
    from striate.vis import explain_gradient, explain_unit, record_backward, record_forward

    model = st.models.get(args.model, rng=0, input_shape=(args.size, args.size, 3))
    x = np.random.default_rng(0).normal(size=(args.size, args.size, 3)).astype(np.float32)
    units = UNITS[args.model]
    record_forward(model, x)  # warm-up: first calls load the compiled loops
    print(f"{args.model} at {args.size}x{args.size}x3, {args.n} repeats, {os.cpu_count()} CPUs")
    show("explain_unit, forward included", timed(lambda: explain_unit(model, x, *units[2]), args.n))
    rec = record_forward(model, x)
    show("record_forward", timed(lambda: record_forward(model, x), args.n))
    for layer, index in units:
        show(f"explain_unit from the record: {layer}", timed(lambda: explain_unit(model, x, layer, index, record=rec),
                                                              args.n * 10), 1e3, "ms")
    show("explain_gradient, both passes included", timed(lambda: explain_gradient(model, x, *units[2]), args.n))
    back = record_backward(model, x)
    for layer, index in units:
        show(f"explain_gradient from the record: {layer}",
             timed(lambda: explain_gradient(model, None, layer, index, record=back), args.n * 10), 1e3, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
