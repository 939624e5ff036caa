"""``striate calc``: convolution arithmetic — output sizes, pads and receptive fields of a chain."""
from __future__ import annotations

import argparse

from .main import CommandError
from ._shapes import parse_size

EPILOG = """layer syntax: comma-separated key=value, keys k (kernel), s (stride), p (padding), d (dilation);
sizes are N or HxW; padding is valid, same, N, HxW or T,B,L,R written TxBxLxR. Defaults: s=1, p=0, d=1.

examples:
  striate calc --input 224 --layer k=11,s=4,p=2 --layer k=3,s=2      # AlexNet conv1 + pool1
  striate calc --input 32 --layer k=3,p=same --layer k=3,p=same --layer k=3,p=same
  striate calc --input 7 --layer k=3,s=2,p=same                       # asymmetric 'same' pads
  striate calc --input 28 --kernel 5 --padding 2                      # one layer, flags instead
  striate calc --input 5 --layer k=3,d=4                              # impossible: explained, exit 2

exit status: 0 when every layer fits; 2 when a setting is impossible (the layers before it are
printed on stdout, the explanation on stderr).
"""

_KEYS = {"k": "kernel", "kernel": "kernel", "s": "stride", "stride": "stride", "p": "padding", "pad": "padding",
         "padding": "padding", "d": "dilation", "dilation": "dilation"}


def parse_layer(text: str) -> dict:
    """'k=11,s=4,p=2' -> dict(kernel=11, stride=4, padding=2); ValueError with the rule otherwise."""
    spec = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in _KEYS:
            raise ValueError(f"--layer {text!r}: expected key=value with keys k, s, p, d (e.g. k=3,s=2,p=same). "
                             f"Received: {item!r}.")
        name = _KEYS[key]
        if name in spec:  # k=3,k=5: which one was meant?
            raise ValueError(f"--layer {text!r}: the {name} is given twice; give each of k, s, p, d at most once.")
        value = value.strip().lower()
        if name == "padding" and value in ("valid", "same"):
            spec[name] = value
            continue
        size = parse_size(value, f"--layer {name}", max_parts=4 if name == "padding" else 2)
        if len(size) == 3:
            raise ValueError(f"--layer padding must be N, HxW or TxBxLxR. Received: {value!r}.")
        spec[name] = size[0] if len(size) == 1 else size
    if "kernel" not in spec:
        raise ValueError(f"--layer {text!r}: the kernel size k= is required.")
    return spec


def add_parser(subparsers):
    p = subparsers.add_parser(
        "calc", help="conv arithmetic: output size, pads and receptive field of a layer or a chain",
        description="Compute, for a sliding-window layer (convolution or pooling) or a chain of them, the output "
                    "size, the actual pads (top, bottom, left, right) and the receptive field and jump of each "
                    "output unit; impossible settings are explained.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--input", required=True, metavar="N|HxW", help="input size, e.g. 224 or 224x200")
    p.add_argument("--layer", action="append", default=[], metavar="SPEC",
                   help="a layer, e.g. k=3,s=2,p=same,d=1 (repeat for a chain, first layer first)")
    p.add_argument("--kernel", metavar="N|HxW", help="kernel of a single layer (instead of --layer)")
    p.add_argument("--stride", default="1", metavar="N|HxW", help="stride of the single layer (default 1)")
    p.add_argument("--padding", default="0", metavar="P", help="padding of the single layer: valid, same, N, HxW")
    p.add_argument("--dilation", default="1", metavar="N|HxW", help="dilation of the single layer (default 1)")
    p.set_defaults(command="calc")
    return p


def run(args) -> int:
    from ..summary.calc import conv_arithmetic

    try:
        size = parse_size(args.input, "--input", max_parts=2)
        if args.layer and args.kernel:
            raise ValueError("give either --layer (one or more) or --kernel/--stride/--padding/--dilation, not both.")
        if args.layer:
            layers = [parse_layer(t) for t in args.layer]
        elif args.kernel:
            layers = [parse_layer(f"k={args.kernel},s={args.stride},p={args.padding},d={args.dilation}")]
        else:
            raise ValueError("no layer given: add --layer k=3,s=1,p=same (repeatable) or --kernel 3.")
    except ValueError as e:
        raise CommandError(str(e)) from None
    size = size * 2 if len(size) == 1 else size
    if min(size) < 1:
        raise CommandError(f"--input must be >= 1. Received: {args.input!r}.")
    result = conv_arithmetic(size, layers)
    text = str(result)
    if result.ok:
        print(text)
        return 0
    print("\n".join(line for line in text.splitlines() if not line.startswith("Impossible:")))
    raise CommandError(result.error)
