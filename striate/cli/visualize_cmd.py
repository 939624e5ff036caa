"""``striate visualize``: pictures of what a trained model learned and where it looks.

One sub-command per picture (filters, activations, saliency, gradcam, occlusion, top-patches,
maximize, gradient-flow, deconvnet, guided-backprop). Images are read and prepared exactly as ``striate predict`` does
(:func:`striate.data.images.prepare`, then the run's recorded standardisation). ``--out`` takes ``.png`` (the picture)
or ``.npy`` / ``.npz`` (the raw map the picture is drawn from).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from .common import add_invert_option, add_overwrite_option, add_quiet_option, invert_choice
from .main import CommandError

EPILOG = """\
examples:
  striate visualize filters     --checkpoint runs/digits-digits_cnn/weights.npz --out filters.png
  striate visualize activations --checkpoint C --image digit.png --out act.png
  striate visualize saliency    --checkpoint C --image digit.png --method smoothgrad --out s.png
  striate visualize gradcam     --checkpoint C --image digit.png --target 3 --out cam.png
  striate visualize occlusion   --checkpoint C --image digit.png --window 2 --stride 1 --out occ.png
  striate visualize top-patches --checkpoint C --layer features.7 --channels 0-15 --k 9 --out top.png
  striate visualize maximize    --checkpoint C --layer features.7 --channels 0-7 --out max.png
  striate visualize gradient-flow --checkpoint C --init --out flow.png   # trained vs freshly initialised
  striate visualize deconvnet   --checkpoint C --image digit.png --layer features.7 --channels 0-7 --out dec.png
  striate visualize guided-backprop --checkpoint C --image digit.png --target 3 --out guided.png

Layer names are those of `striate summary`. --out FILE.npy writes the raw map instead of a picture.
"""

WHAT = ("filters", "activations", "saliency", "gradcam", "occlusion", "top-patches", "maximize", "gradient-flow",
        "deconvnet", "guided-backprop")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "visualize", help="pictures of what a trained model learned and where it looks",
        description="See what a model trained by `striate train` learned: its filters and feature maps,\n"
                    "where it looks for a class, and what excites its units.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="what", metavar="WHAT")

    def common(name, help_, image=False, target=False):
        q = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        needed = q.add_argument_group("required arguments")
        needed.add_argument("--checkpoint", "--weights", dest="checkpoint", required=True, metavar="PATH",
                            help="weights.npz or checkpoint.npz written by striate train or finetune")
        needed.add_argument("--out", required=True, metavar="FILE", help="output picture (.png) or raw map (.npy)")
        add_overwrite_option(q)
        add_quiet_option(q)
        if image:
            q.add_argument("--image", required=True, metavar="IMAGE",
                           help="image file (PNG, JPEG, ...), or a preprocessed (h, w, c) array as .npy")
            add_invert_option(q)
        if target:
            q.add_argument("--target", type=int, metavar="K", help="class index (default: the predicted class)")
        q.set_defaults(command="visualize")
        return q

    q = common("filters", "a conv layer's filters as tiles (default: the first conv)")
    q.add_argument("--layer", metavar="NAME", help="a Conv2D layer name (striate summary)")
    q.add_argument("--mode", choices=("auto", "rgb", "slices", "mean"), default="auto",
                   help="rgb tiles, one tile per (input, output) slice, or per filter averaged (auto)")
    q = common("activations", "feature maps of one image, layer by layer", image=True)
    q.add_argument("--layer", action="append", metavar="NAME",
                   help="layer to show (repeatable; default: the output of every conv block)")
    q = common("saliency", "input-gradient saliency map", image=True, target=True)
    q.add_argument("--method", choices=("grad", "smoothgrad", "grad_x_input"), default="grad")
    q.add_argument("--samples", type=int, default=32, help="SmoothGrad's noisy copies (32)")
    q = common("gradcam", "Grad-CAM class activation map", image=True, target=True)
    q.add_argument("--layer", metavar="NAME", help="layer with feature maps (default: the last one)")
    q = common("occlusion", "probability drop when a window is covered", image=True, target=True)
    q.add_argument("--window", type=int, default=4, help="window side in pixels (4)")
    q.add_argument("--stride", type=int, default=2, help="window step in pixels (2)")
    q.add_argument("--baseline", type=float, default=0.0,
                   help="value of the covered pixels after standardisation (0 = the mean pixel)")
    q = common("top-patches", "the test images' patches that excite each channel most")
    q.add_argument("--layer", metavar="NAME", help="layer with feature maps (default: the last one)")
    q.add_argument("--channels", default="0-15", metavar="RANGE", help="channels, e.g. 0-15 or 0,3,7 (0-15)")
    q.add_argument("--k", type=int, default=9, help="patches per channel (9)")
    q.add_argument("--dataset", help="data set to search (default: the one the model was trained on)")
    q.add_argument("--data-dir", metavar="DIR", help="folder with the data set's files")
    q.add_argument("--max-images", type=int, default=2000, metavar="N", help="test images searched (2000)")
    q = common("maximize", "inputs that maximise each channel's mean activation")
    q.add_argument("--layer", required=True, metavar="NAME", help="layer with feature maps")
    q.add_argument("--channels", default="0-7", metavar="RANGE", help="channels, e.g. 0-7 (0-7)")
    q.add_argument("--steps", type=int, default=200, help="gradient-ascent steps (200)")
    q.add_argument("--seed", type=int, default=0)
    q = common("gradient-flow", "per-layer gradient norms and activation statistics of one training step")
    q.add_argument("--batch", type=int, default=64, metavar="N", help="test images in the step (64)")
    q.add_argument("--init", action="store_true", help="also measure the model freshly initialised (seed 0)")
    q.add_argument("--dataset", help="data set of the batch (default: the one the model was trained on)")
    q.add_argument("--data-dir", metavar="DIR", help="folder with the data set's files")
    q = common("deconvnet", "each channel's strongest unit projected back to pixels (Zeiler & Fergus deconvnet)",
               image=True)
    q.add_argument("--layer", required=True, metavar="NAME", help="layer with feature maps (striate summary)")
    q.add_argument("--channels", metavar="RANGE", help="channels, e.g. 0-7 or 0,3,7 (default: the first 8)")
    common("guided-backprop", "guided backpropagation: the class score's gradient through guided ReLUs",
           image=True, target=True)
    p.set_defaults(command="visualize", what=None)
    return p


# ----------------------------------------------------------------------------------------- helpers
def parse_channels(text: str, limit: int, option: str = "--channels") -> list:
    """'0-15' / '0,3,7' / '5' -> sorted channel indices, each checked against ``limit``."""
    out = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                a, b = int(a), int(b)
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise CommandError(f"{option} must be channel numbers like 0-15 or 0,3,7. Received: {text!r}.") from None
    bad = [c for c in out if not 0 <= c < limit]
    if bad:
        raise CommandError(f"{option}: the layer has {limit} channels (0-{limit - 1}). Received: {text!r}.")
    return sorted(dict.fromkeys(out))


def load_input(path, meta, invert="auto"):
    """``(x, display)``: the image as the model takes it ``(h, w, c)`` and as shown (pixels in [0, 1]).

    An image file is read and prepared as by ``striate predict`` (:func:`striate.data.images.prepare`:
    EXIF orientation, transparency, the blank and ``--invert`` rules, resize), then standardised as in
    the run; a ``.npy`` file is taken as already preprocessed.
    """
    from ..data.images import ImageError, load_array, prepare
    from .common import standardizer

    shape = tuple(meta.get("input_shape") or ())
    if len(shape) != 3:
        raise CommandError("the model file does not record its input shape (h, w, c).")
    try:
        if str(path).lower().endswith(".npy"):
            a = load_array(path, shape)
            return a, a
        raw = prepare(path, shape, meta, invert=invert)                   # float32 (h, w, c) in [0, 1]
    except (ImageError, ImportError) as e:
        raise CommandError(str(e)) from None
    standardize = standardizer(meta)
    x = standardize(raw[None])[0] if standardize is not None else raw
    return x, raw


def _vis_call(fn, *args, **kwargs):
    """Run a striate.vis function, turning its one-line ValueErrors into CommandErrors."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as e:
        raise CommandError(" ".join(str(e).split())) from None
    except ImportError as e:
        raise CommandError(str(e)) from None


def _out_kind(path):
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".png", ".npy", ".npz", ".gif", ".jpg", ".jpeg"):
        raise CommandError(f"--out must end in .png (a picture) or .npy (the raw map). Received: {path!r}.")
    return "array" if ext in (".npy", ".npz") else "image"


def _save(img_or_array, path):
    from ..vis import draw

    if isinstance(img_or_array, (np.ndarray, dict)):
        draw.save_array(img_or_array, path)
    else:
        draw.save_pil(img_or_array, path)


# ------------------------------------------------------------------------------------- sub-commands
def _filters(args, model, meta):
    from ..vis import figures, filters

    shape = tuple(meta["input_shape"])
    if _out_kind(args.out) == "array":
        _, module = _vis_call(figures.conv_layer, model, shape, args.layer)
        return _save(_vis_call(filters.filter_grid, module, mode=args.mode), args.out)
    return _save(_vis_call(figures.filters_figure, model, shape, args.layer, mode=args.mode), args.out)


def _activations(args, model, meta):
    from ..vis import figures, filters

    x, shown = load_input(args.image, meta, invert_choice(args))
    names = args.layer or _vis_call(filters.default_activation_layers, model, x.shape)
    acts = _vis_call(filters.activations, model, x, names)
    if _out_kind(args.out) == "array":
        return _save(acts[names[0]] if len(names) == 1 else acts, args.out)
    return _save(_vis_call(figures.activations_figure, model, x, shown, acts, meta.get("class_names")), args.out)


def _attribution(args, model, meta, kind):
    from ..vis import attribution, figures

    x, shown = load_input(args.image, meta, invert_choice(args))
    target = args.target
    if target is None:
        target = _vis_call(attribution.predicted_class, model, x)
    names = meta.get("class_names")
    if kind == "saliency":
        m = _vis_call(attribution.saliency, model, x, target, method=args.method, samples=args.samples)
        figure = (figures.saliency_figure, model, x, shown, m, target, args.method, names)
    elif kind == "gradcam":
        layer = args.layer or _vis_call(attribution.default_cam_layer, model, x.shape)
        m = _vis_call(attribution.grad_cam, model, x, target, layer=layer)
        figure = (figures.grad_cam_figure, model, x, shown, m, target, layer, names)
    else:
        m = _vis_call(attribution.occlusion, model, x, target, window=args.window, stride=args.stride,
                      baseline=args.baseline)
        figure = (figures.occlusion_figure, model, x, shown, m, target, args.window, args.stride, names)
    if _out_kind(args.out) == "array":
        return _save(m, args.out)
    return _save(_vis_call(*figure), args.out)


def _top_patches(args, model, meta):
    from ..vis import attribution, figures, patches
    from ..vis import find_layer
    from .common import load_data, standardizer

    shape = tuple(meta["input_shape"])
    layer = args.layer or _vis_call(attribution.default_cam_layer, model, shape)
    row, _ = _vis_call(find_layer, model, layer, shape, "top-patches", spatial=True)
    channels = parse_channels(args.channels, row.output_shape[-1])
    if args.k < 1 or args.max_images < 1:
        raise CommandError(f"--k and --max-images must be positive. Received: --k {args.k}, --max-images {args.max_images}.")
    dataset = args.dataset or meta.get("dataset")
    if not dataset:
        raise CommandError("the model file does not record its data set: give --dataset.")
    ds = load_data(dataset, args.data_dir)
    if tuple(ds.input_shape) != shape:
        raise CommandError(f"the model takes {shape} images; {ds.name} has {tuple(ds.input_shape)}.")
    raw = ds.x_test[:args.max_images]
    raw = raw.astype(np.float32) / np.float32(255) if raw.dtype == np.uint8 else raw.astype(np.float32)
    standardize = standardizer(meta)
    x = standardize(raw) if standardize is not None else raw
    results = {c: _vis_call(patches.top_patches, model, x, layer, c, k=args.k, display=raw, fill=np.nan)
               for c in channels}
    if _out_kind(args.out) == "array":
        return _save({f"channel_{c}": r.patches for c, r in results.items()}, args.out)
    return _save(_vis_call(figures.top_patches_figure, results, layer), args.out)


def _maximize(args, model, meta):
    from ..vis import figures, patches
    from ..vis import find_layer
    from .common import standardizer

    shape = tuple(meta["input_shape"])
    row, _ = _vis_call(find_layer, model, args.layer, shape, "maximize", spatial=True)
    channels = parse_channels(args.channels, row.output_shape[-1])
    if args.steps < 1:
        raise CommandError(f"--steps must be a positive integer. Received: {args.steps}.")
    standardize = standardizer(meta)
    # keep the image in the range real pixels take after standardisation
    lo, hi = (standardize(np.zeros((1, 1, 1, shape[2]), np.float32)).min(),
              standardize(np.ones((1, 1, 1, shape[2]), np.float32)).max()) if standardize is not None else (0.0, 1.0)
    images = {c: _vis_call(patches.maximize_activation, model, args.layer, c, shape, steps=args.steps,
                           rng=args.seed + c, clip=(float(lo), float(hi))) for c in channels}
    if _out_kind(args.out) == "array":
        return _save({f"channel_{c}": a for c, a in images.items()}, args.out)
    return _save(_vis_call(figures.maximize_figure, model, args.layer, images, args.steps), args.out)


def _gradient_flow(args, model, meta):
    from ..vis import gradient_flow, save_gradient_flow_plot
    from .common import build_model, load_data, standardizer

    dataset = args.dataset or meta.get("dataset")
    if not dataset:
        raise CommandError("the model file does not record its data set: give --dataset.")
    if args.batch < 2:
        raise CommandError(f"--batch must be at least 2 (batch norm needs a batch). Received: --batch {args.batch}.")
    ds = load_data(dataset, args.data_dir or meta.get("data_dir"))
    x = ds.x_test[:args.batch]
    x = x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x.astype(np.float32)
    x = standardizer(meta)(x) if standardizer(meta) is not None else x
    flows = {"trained": _vis_call(gradient_flow, model, x, ds.y_test[:args.batch])}
    if args.init:
        spec = meta.get("model") or {}
        if "name" not in spec:
            raise CommandError("--init needs a model of the zoo or a layer list; this file holds an imported graph.")
        fresh = build_model(spec["name"], dict(spec.get("args") or {}), rng=0)
        flows["initialised"] = _vis_call(gradient_flow, fresh, x, ds.y_test[:args.batch])
    for label, flow in flows.items():
        print(f"{label}: loss {flow.loss:.4f} on {len(x)} test images\n{flow.table()}")
    if _out_kind(args.out) == "array":
        return _save({f"{label}_{k}": getattr(f, k) for label, f in flows.items() for k in
                      ("weight_norm", "grad_norm", "output_grad_norm", "act_mean", "act_std", "act_zero")}, args.out)
    name = (meta.get("model") or {}).get("name", "model")
    _vis_call(save_gradient_flow_plot, flows, args.out, title=f"gradient flow: {name}")
    print(f"wrote {args.out}")


def _deconvnet(args, model, meta):
    from ..vis import deconvnet, deconvnet_unit, figures, find_layer

    x, shown = load_input(args.image, meta, invert_choice(args))
    row, _ = _vis_call(find_layer, model, args.layer, x.shape, "deconvnet", spatial=True)
    count = int(row.output_shape[-1])
    channels = parse_channels(args.channels, count) if args.channels else list(range(min(8, count)))
    projections = {c: _vis_call(deconvnet, model, x, args.layer, c) for c in channels}
    if _out_kind(args.out) == "array":
        return _save({f"channel_{c}": r for c, r in projections.items()}, args.out)
    units = {c: _vis_call(deconvnet_unit, model, x, args.layer, c) for c in channels}
    return _save(_vis_call(figures.deconvnet_figure, model, x, shown, args.layer, projections, units), args.out)


def _guided_backprop(args, model, meta):
    from ..vis import attribution, figures, guided_backprop

    x, shown = load_input(args.image, meta, invert_choice(args))
    target = args.target
    if target is None:
        target = _vis_call(attribution.predicted_class, model, x)
    g = _vis_call(guided_backprop, model, x, target)
    if _out_kind(args.out) == "array":
        return _save(g, args.out)
    return _save(_vis_call(figures.guided_backprop_figure, model, x, shown, g, target, meta.get("class_names")),
                 args.out)


def run(args) -> int:
    from .common import check_new_file, load_model_file

    if not getattr(args, "what", None):
        raise CommandError(f"say what to draw: striate visualize {{{','.join(WHAT)}}} ... (see --help).")
    _out_kind(args.out)
    check_new_file(args.out, args.overwrite, source=args.checkpoint)
    model, meta = load_model_file(args.checkpoint)
    if not meta.get("input_shape"):
        raise CommandError(f"{args.checkpoint} does not record the model's input shape.")
    if args.what == "filters":
        _filters(args, model, meta)
    elif args.what == "activations":
        _activations(args, model, meta)
    elif args.what in ("saliency", "gradcam", "occlusion"):
        _attribution(args, model, meta, args.what)
    elif args.what == "top-patches":
        _top_patches(args, model, meta)
    elif args.what == "gradient-flow":
        _gradient_flow(args, model, meta)
    elif args.what == "deconvnet":
        _deconvnet(args, model, meta)
    elif args.what == "guided-backprop":
        _guided_backprop(args, model, meta)
    else:
        _maximize(args, model, meta)
    if not args.quiet:
        print(f"wrote {args.out}")
    return 0
