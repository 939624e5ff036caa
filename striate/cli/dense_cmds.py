"""``striate train``, ``evaluate`` and ``predict`` for localisation, detection and segmentation runs:
option checks and printing around :mod:`striate.training.dense_run`."""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from .common import one_line, read_each, report_unread
from .main import CommandError


def _data(dataset, data_dir):
    from ..training.dense_run import load_dense_data

    try:
        return load_dense_data(dataset, data_dir)
    except (ValueError, FileNotFoundError, TypeError, ImportError) as e:
        raise CommandError(one_line(e)) from None
    except OSError as e:
        raise CommandError(f"could not read the data: {one_line(e)}") from None


# ------------------------------------------------------------------------------------------ train
def train_dense_run(args, request, ckpt, started) -> int:
    import uuid

    from ..training import CheckpointError, recipe
    from ..training.dense_run import task_of, train_dense
    from ..training.run_dir import default_folder
    from .train_config import check_run_dir, open_run_dir, resolve_dense_config

    if args.distributed:
        raise CommandError("--distributed trains classification only; drop it for localisation, detection and "
                           "segmentation.")
    if args.tensorboard or args.report:
        raise CommandError(f"{'--tensorboard' if args.tensorboard else '--report'} is for classification runs; drop "
                           "it for localisation, detection and segmentation.")
    config = resolve_dense_config(args, request, ckpt)
    if ckpt is not None:
        try:
            plan = recipe.continue_plan(config, ckpt)
        except ValueError as e:
            raise CommandError(one_line(e)) from None
        if plan:
            config["replan"] = plan
    run_id = (ckpt.meta.get("run_id") if ckpt is not None else None) or uuid.uuid4().hex
    name = config["dataset"] or os.path.basename(os.path.normpath(config["data_dir"]))
    out = args.out or default_folder("train", name, config["model"], resume=args.resume)
    run_dir = check_run_dir(out, args, run_id, True)
    ds = _data(config["dataset"], config["data_dir"])
    try:
        task_of(ds, config["model"], config["task"])
    except ValueError as e:
        raise CommandError(one_line(e)) from None
    open_run_dir(run_dir, args, run_id)
    try:
        metrics = train_dense(ds, config, run_dir, run_id, resume=ckpt, verbose=0 if args.quiet else 1,
                              started=started, announce=None if args.quiet else print)
    except CheckpointError as e:
        raise CommandError(one_line(e)) from None
    except FloatingPointError as e:
        raise CommandError(str(e).replace("fit: ", "") + " (--lr)") from None
    except ValueError as e:
        raise CommandError(one_line(e)) from None
    except MemoryError:
        raise CommandError(f"out of memory training {config['model']} with --batch-size {config['batch_size']}: "
                           "lower --batch-size.") from None
    except OSError as e:
        raise CommandError(f"could not write the run into {out!r}: {e.strerror or one_line(e)}. The files already "
                           f"there are intact; free space (or choose another --out) and --resume "
                           f"{run_dir.checkpoint}.") from None
    finally:
        run_dir.close()
    print(f"{headline(metrics)}  ({metrics['epochs']} epochs, {metrics['seconds']:.0f}s)  ->  {out}/ "
          "(weights.npz, checkpoint.npz, log.csv, metrics.json)")
    return 0


def headline(m: dict) -> str:
    """The figures of a task in one line."""
    if "mAP50" in m:
        return f"test mAP50 {100 * m['mAP50']:.2f}%  mAP (0.5:0.95) {100 * m['mAP']:.2f}%"
    if "mIoU" in m:
        return f"test mIoU {100 * m['mIoU']:.2f}%  pixel accuracy {100 * m['pixel_accuracy']:.2f}%"
    return (f"test class accuracy {100 * m['class_accuracy']:.2f}%  mean IoU {m['mean_iou']:.3f}  "
            f"(class right and IoU >= 0.5: {100 * m['localisation_accuracy']:.2f}%)")


# --------------------------------------------------------------------------------------- evaluate
def evaluate_dense_run(args, model, meta) -> int:
    from ..training.dense_run import evaluate_dense

    if args.tta:
        raise CommandError("--tta is for classification models; drop it.")
    if args.dataset is not None:
        raise CommandError("--dataset: a localisation, detection or segmentation run is evaluated on its own data; "
                           "give --data-dir for another copy of them.")
    config = meta.get("config") or {}
    data_dir = os.path.abspath(args.data_dir) if args.data_dir else config.get("data_dir")
    if data_dir is not None and not os.path.isdir(data_dir):
        raise CommandError(f"the data folder {data_dir!r} is not a folder: give --data-dir with the run's data.")
    ds = _data(config.get("dataset"), data_dir)
    if meta.get("data_sha256") and ds.sha256 != meta["data_sha256"]:
        print(f"striate evaluate: warning: the data differ from the run's (SHA-256 {ds.sha256[:12]}... now, "
              f"{meta['data_sha256'][:12]}... in training)", file=sys.stderr)
    try:
        m = evaluate_dense(model, meta, ds, batch_size=args.batch_size)
    except ValueError as e:
        raise CommandError(one_line(e)) from None
    if args.json:
        print(json.dumps({k: v for k, v in m.items() if k != "confusion_matrix"}, indent=2))
        return 0
    print(f"{meta['model']['name']} ({meta['task']}) on {ds.name} test set ({m['num_images']} images)")
    print("  " + headline(m))
    table = m.get("per_class_AP") or m.get("per_class_IoU") or m.get("per_class_accuracy")
    if "per_class_AP" in m:
        print("per class:  AP (0.5:0.95)  AP50")
        rows = [(c, m["per_class_AP"][c], m["per_class_AP50"][c]) for c in table]
    elif "per_class_IoU" in m:
        print("per class:  IoU")
        rows = [(c, v) for c, v in table.items()]
    else:
        print("per class:  class accuracy")
        rows = [(c, v) for c, v in table.items()]
    width = max(len(str(r[0])) for r in rows)
    for row in rows:
        print("  " + str(row[0]).ljust(width) + "".join("       n/a" if v is None else f"  {100 * v:7.2f}%"
                                                        for v in row[1:]))
    return 0


# ---------------------------------------------------------------------------------------- predict
def predict_dense_run(args, model, meta) -> int:
    from ..data.images import ImageError, read_image
    from ..training.dense_run import coco_image_ids, detections_to_coco, predict_dense

    task = meta["task"]
    json_path = args.json if isinstance(args.json, str) else None
    if args.out is None and json_path is None and not args.json:
        raise CommandError("say where the predictions go: --out DIR (pictures) and/or --json FILE (COCO results), "
                           "or --json alone to print them.")
    for path in ([json_path] if json_path else []):
        if os.path.isdir(path):
            raise CommandError(f"--json {path!r} is a folder; give a file path.")
        if os.path.exists(path) and not args.overwrite:
            raise CommandError(f"--json {path!r} exists; add --overwrite to replace it, or choose another file.")
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CommandError(f"--out {args.out!r} is a file; give a folder.")
    channels = int(meta["input_shape"][2])
    images, paths, failed = read_each(args.images, lambda path: read_image(path, channels=channels),
                                      (ImageError, OSError, ValueError))
    preds = predict_dense(model, meta, images)
    names = meta["class_names"]
    written = []
    if args.out is not None:
        written = _write_pictures(args, task, images, paths, preds, meta)
    if task == "segmentation":
        summary = [{"file_name": os.path.basename(p), "classes": {meta["mask_class_names"][int(c)]: int(n)
                    for c, n in zip(*np.unique(m, return_counts=True)) if 0 < c < len(meta["mask_class_names"])}}
                   for p, m in zip(paths, preds)]
        if args.json:
            _emit_json(summary, json_path)
        for s in summary:
            print(f"{s['file_name']}: " + (", ".join(f"{c} {n} px" for c, n in s["classes"].items()) or "background"))
    else:
        results = detections_to_coco(preds, [os.path.basename(p) for p in paths], meta["category_ids"],
                                     image_ids=coco_image_ids(paths))
        if args.json:
            _emit_json(results, json_path)
        if not (args.json and json_path is None):
            for path, p in zip(paths, preds):
                shown = [f"{names[int(c)]} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]"
                         for b, s, c in zip(p["boxes"], p["scores"], p["classes"]) if s >= args.min_score]
                print(f"{path}: " + ("; ".join(shown) or "nothing found"))
    if written:
        print(f"{len(written)} picture(s) -> {args.out}/")
    if json_path:
        print(f"results -> {json_path}")
    return report_unread(failed, len(args.images))


def _emit_json(obj, path) -> None:
    from ..atomic import atomic_write_text

    text = json.dumps(obj, indent=1)
    if path is None:
        print(text)
    else:
        atomic_write_text(path, text + "\n")


def _write_pictures(args, task, images, paths, preds, meta) -> list:
    """``STEM_boxes.png`` or ``STEM_overlay.png`` and (segmentation) ``STEM_mask.png`` per picture."""
    from PIL import Image

    from ..vis.dense import draw_boxes, draw_mask

    os.makedirs(args.out, exist_ok=True)
    planned = []
    for path, image, p in zip(paths, images, preds):
        stem = os.path.splitext(os.path.basename(path))[0]
        if task == "segmentation":
            planned.append((os.path.join(args.out, f"{stem}_overlay.png"),
                            lambda image=image, p=p: draw_mask(image, p, meta["mask_class_names"])))
            planned.append((os.path.join(args.out, f"{stem}_mask.png"),
                            lambda p=p: Image.fromarray(np.asarray(p, np.uint8))))
        else:
            planned.append((os.path.join(args.out, f"{stem}_boxes.png"),
                            lambda image=image, p=p: draw_boxes(image, p, meta["class_names"], args.min_score)))
    clash = [f for f, _ in planned if os.path.exists(f)]
    if clash and not args.overwrite:
        raise CommandError(f"--out: {clash[0]} exists ({len(clash)} such file(s)); add --overwrite to replace them, "
                           "or choose another --out.")
    names = [f for f, _ in planned]
    if len(set(names)) != len(names):
        raise CommandError("two pictures have the same file name; their outputs would overwrite each other. Give "
                           "them different names.")
    from ..atomic import atomic_open

    for path, make in planned:
        with atomic_open(path, "wb") as f:
            make().save(f, format="PNG")
    return names
