"""``striate animate``: conv arithmetic as a GIF — the window sliding over the padded input and the
output cell it fills (Dumoulin & Visin 2016), values from striate's own conv and pooling ops."""
from __future__ import annotations

import argparse
import os

from .common import add_overwrite_option, add_quiet_option, check_new_file
from .main import CommandError

EPILOG = """\
examples:
  striate animate conv --input 5 --kernel 3 --padding 1 --stride 2 --out conv.gif
  striate animate conv --input 7 --kernel 3 --dilation 2 --numbers --out dilated.gif
  striate animate conv --input 3 --kernel 3 --stride 2 --padding 1 --transposed --numbers --out up.gif
  striate animate conv --input 5x7 --kernel 3x2 --stride 2x1 --out rect.gif
  striate animate pool --input 4 --kernel 2 --stride 2 --mode max --numbers --out pool.gif

Sizes are N or HxW. One frame per output cell (per input cell for --transposed).
"""


def _size(text: str, option: str, minimum: int):
    try:
        parts = [int(p) for p in str(text).lower().replace(",", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < minimum:
        raise CommandError(f"{option} must be an int >= {minimum} or HxW (e.g. 5 or 5x7). Received: {text!r}.")
    return tuple(parts)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "animate", help="conv / pooling arithmetic as an animated GIF",
        description="Draw how a convolution or pooling window slides over its input, frame by frame.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    for name in ("conv", "pool"):
        q = sub.add_parser(name, help=f"animate a {'convolution' if name == 'conv' else 'pooling'}",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        q.add_argument("--input", default="5", metavar="N|HxW", help="input size (5)")
        q.add_argument("--kernel", default="3" if name == "conv" else "2", metavar="N|HxW", help="kernel size")
        q.add_argument("--stride", default=None if name == "pool" else "1", metavar="N|HxW",
                       help="stride (1; pooling: the kernel size)")
        q.add_argument("--padding", default="0", metavar="N|HxW", help="zero padding on each side (0)")
        if name == "conv":
            q.add_argument("--dilation", default="1", metavar="N|HxW", help="kernel dilation (1)")
            q.add_argument("--transposed", action="store_true",
                           help="the transposed convolution (stride inserts gaps, padding crops)")
        else:
            q.add_argument("--mode", choices=("max", "avg"), default="max")
        q.add_argument("--numbers", action="store_true", help="write the values in the cells")
        q.add_argument("--cell", type=int, default=36, help="cell size in pixels (36)")
        q.add_argument("--duration", type=int, default=700, help="milliseconds per frame (700)")
        q.add_argument("--seed", type=int, default=0, help="seed of the example values")
        q.add_argument("--out", required=True, metavar="FILE.gif")
        add_overwrite_option(q)
        add_quiet_option(q)
        q.set_defaults(command="animate")
    p.set_defaults(command="animate", what=None)
    return p


# Bounds of one animation, checked before anything is drawn: frames (a GIF of more is no longer a
# picture of the arithmetic) and the memory that writing it takes (frames are drawn one at a time).
MAX_FRAMES = 400
MAX_MEMORY = 512 * 2**20


def _frames(size, kernel, stride, padding, dilation, transposed) -> int:
    """Frames of the animation, from its geometry alone: one per output cell (one per input cell for
    the transposed convolution); 0 where the geometry is impossible (the animation then says why)."""
    if transposed:
        return size[0] * size[1]
    out = [(i + 2 * p - d * (k - 1) - 1) // s + 1 for i, k, s, p, d in zip(size, kernel, stride, padding, dilation)]
    return max(0, out[0]) * max(0, out[1])


def _check_drawable(pixels, args):
    """Refuse frames of ``pixels`` pixels that would take more than MAX_MEMORY to draw and write."""
    from ..vis.animate import BYTES_PER_PIXEL

    need = pixels * BYTES_PER_PIXEL
    if need > MAX_MEMORY:
        raise CommandError(f"--input {args.input} with --cell {args.cell} draws frames of {pixels / 1e6:,.0f} "
                           f"megapixels, about {need / 2**30:,.1f} GB to write; the limit is "
                           f"{MAX_MEMORY // 2**20} MB: use a smaller --input or --cell.")


def run(args) -> int:
    from ..vis import animate

    if not getattr(args, "what", None):
        raise CommandError("say what to animate: striate animate {conv,pool} ... (see --help).")
    if os.path.splitext(args.out)[1].lower() != ".gif":
        raise CommandError(f"--out must be a .gif file. Received: {args.out!r}.")
    check_new_file(args.out, args.overwrite)
    if not 12 <= args.cell <= 200 or args.duration < 20:
        raise CommandError(f"--cell must be 12-200 pixels and --duration >= 20 ms. Received: --cell {args.cell}, "
                           f"--duration {args.duration}.")
    size, kernel = _size(args.input, "--input", 1), _size(args.kernel, "--kernel", 1)
    padding = _size(args.padding, "--padding", 0)
    stride = kernel if args.stride is None else _size(args.stride, "--stride", 1)
    dilation = _size(getattr(args, "dilation", 1), "--dilation", 1)
    transposed = getattr(args, "transposed", False)
    # the bounds first, from the geometry alone: nothing is computed or drawn beyond them
    frames = _frames(size, kernel, stride, padding, dilation, transposed)
    if frames > MAX_FRAMES:
        per = "input cell" if transposed else "output cell"
        raise CommandError(f"--input {args.input} makes {frames:,} frames (one per {per}); the limit is "
                           f"{MAX_FRAMES}: use a smaller --input or a larger --stride.")
    _check_drawable((size[0] + 2 * padding[0]) * (size[1] + 2 * padding[1]) * args.cell ** 2, args)  # the input
    try:
        if args.what == "conv":
            anim = animate.conv_animation(size, kernel, stride, padding, dilation, transposed=transposed,
                                          rng=args.seed)
        else:
            anim = animate.pool_animation(size, kernel, stride, padding, mode=args.mode, rng=args.seed)
        layout = animate.frame_layout(anim.kind, anim.input_size, anim.output_size, anim.padding, args.cell)
        _check_drawable(layout["width"] * layout["height"], args)
        frames = animate.save_animation(anim, args.out, numbers=args.numbers, cell=args.cell, duration=args.duration)
    except (ValueError, ImportError) as e:
        raise CommandError(" ".join(str(e).split())) from None
    if not args.quiet:
        print(f"{anim.describe()}: {frames} frames -> {args.out}")
    return 0
