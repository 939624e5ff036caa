"""Transfer learning on MNIST, measured: LeNet-5 pre-trained on digits 0-4, fine-tuned on digits 5-9
with 50 labelled images per class, against the same network trained from scratch on those 250 images.

    PYTHONPATH=. python scripts/transfer_mnist.py --data-dir PATH [--seeds 5]    # PATH: a folder with the MNIST files

Pre-training uses every training image of digits 0-4 (about 30,600); the test set is every test
image of digits 5-9 (4,861). Fine-tuning is `striate finetune`'s two phases (its ``finetune``
function): the new head alone with the base frozen (10 epochs, lr 0.05), then everything for 20
epochs with the base at lr / 10 (no augmentation in either arm).
Scratch training gets the same images and the same number of epochs, at the best of three
learning rates (chosen on the test set, which can only flatter the scratch baseline). Writes
``benchmarks/transfer_mnist.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import striate as st  # noqa: E402
from striate.cli.finetune_cmd import _subset, finetune  # noqa: E402
from striate.data import DataLoader, load_dataset  # noqa: E402
from striate.data import transforms as T  # noqa: E402
from striate.training import evaluate, fit, save_weights  # noqa: E402

HEAD_EPOCHS, FT_EPOCHS = 10, 20
SCRATCH_LRS = (0.01, 0.02, 0.05)


def sgd(params, lr):
    return st.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", metavar="PATH", help="folder with the MNIST files (default: the download cache)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--pretrain-epochs", type=int, default=8)
    ap.add_argument("--out", default="runs/transfer_mnist")
    args = ap.parse_args()
    t0 = time.perf_counter()
    mnist = load_dataset("mnist", data_dir=args.data_dir)
    low = _subset(mnist, [0, 1, 2, 3, 4], None, 0)
    high = _subset(mnist, [5, 6, 7, 8, 9], None, 0)

    # --- pre-training on digits 0-4 with the MNIST recipe of `striate train` (SGD 0.02, cosine, 2-pixel crops)
    st.manual_seed(0)
    norm = T.Standardize().fit(low.x_train)
    base = st.models.lenet5(num_classes=5, rng=0)
    opt = sgd(base.parameters(), 0.02)
    augment = T.Compose([T.RandomCrop((28, 28), padding=2), norm])
    fit(base, DataLoader(low.x_train, low.y_train, batch_size=128, transform=augment, rng=1),
        epochs=args.pretrain_epochs, optimizer=opt, schedule=st.optim.CosineAnnealingLR(opt, args.pretrain_epochs),
        verbose=2)
    pre_acc = evaluate(base, DataLoader(low.x_test, low.y_test, 256, shuffle=False, transform=norm))["accuracy"]
    meta = {"model": {"name": "lenet5", "args": {"num_classes": 5, "input_shape": [28, 28, 1]}},
            "dataset": "mnist", "class_names": list(low.class_names), "input_shape": [28, 28, 1],
            "preprocess": {"scale": 1 / 255, "mean": norm.mean.tolist(), "std": norm.std.tolist(), "eps": norm.eps}}
    base_path = os.path.join(args.out, "base_0-4", "weights.npz")
    save_weights(base_path, base, meta=meta)
    print(f"pre-trained on 0-4: test accuracy {pre_acc:.4f} -> {base_path}", flush=True)

    config = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "lr_mult": 10.0}
    results = {"finetune": [], "scratch": {lr: [] for lr in SCRATCH_LRS}}
    for seed in range(args.seeds):
        few = _subset(high, None, 50, seed)   # 50 images per class, 250 in all
        test = DataLoader(few.x_test, few.y_test, 256, shuffle=False, transform=norm)
        model = st.models.lenet5(num_classes=5, rng=0)
        st.training.load_weights(base_path, model)
        st.manual_seed(seed)
        head = model.replace_head(5, rng=seed)
        train = DataLoader(few.x_train, few.y_train, batch_size=32, transform=norm, rng=seed + 1)
        finetune(model, head, train, HEAD_EPOCHS, FT_EPOCHS, config, verbose=0)
        results["finetune"].append(evaluate(model, test)["accuracy"])
        for lr in SCRATCH_LRS:
            st.manual_seed(seed)
            own = T.Standardize().fit(few.x_train)
            scratch = st.models.lenet5(num_classes=5, rng=seed)
            opt = sgd(scratch.parameters(), lr)
            epochs = HEAD_EPOCHS + FT_EPOCHS
            fit(scratch, DataLoader(few.x_train, few.y_train, batch_size=32, transform=own, rng=seed + 1),
                epochs=epochs, optimizer=opt, schedule=st.optim.CosineAnnealingLR(opt, epochs), verbose=0)
            acc = evaluate(scratch, DataLoader(few.x_test, few.y_test, 256, shuffle=False, transform=own))["accuracy"]
            results["scratch"][lr].append(acc)
        print(f"seed {seed}: fine-tuned {results['finetune'][-1]:.4f}, scratch "
              + ", ".join(f"lr {lr}: {results['scratch'][lr][-1]:.4f}" for lr in SCRATCH_LRS), flush=True)
    best_lr = max(SCRATCH_LRS, key=lambda lr: np.mean(results["scratch"][lr]))
    ft, sc = np.array(results["finetune"]), np.array(results["scratch"][best_lr])
    summary = {
        "pretrain_accuracy_0-4": pre_acc, "pretrain_epochs": args.pretrain_epochs,
        "train_images": 250, "test_images": int(len(high.y_test)), "seeds": args.seeds,
        "finetune_mean": float(ft.mean()), "finetune_std": float(ft.std()), "finetune": ft.tolist(),
        "scratch_best_lr": best_lr, "scratch_mean": float(sc.mean()), "scratch_std": float(sc.std()),
        "scratch": {str(lr): v for lr, v in results["scratch"].items()},
        "head_epochs": HEAD_EPOCHS, "finetune_epochs": FT_EPOCHS, "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(summary, indent=2))
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "transfer_mnist.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
