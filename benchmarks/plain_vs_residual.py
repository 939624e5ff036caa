"""Plain against residual nets (He et al. 2016, sec. 4.2, fig. 6), and where their gradients go.

Trains plain-20, plain-56, ResNet-20 and ResNet-56 (and a plain-56 without batch norm) under one
recipe on the data at hand, records the training error per epoch (and the test error of a held-out
part), and measures every layer's weight-gradient norm at initialisation and during training.
Writes into --out:

  training_error.png   training error (thin) and test error (bold) per epoch, plain nets left and
                       ResNets right, as in the paper's fig. 6
  gradient_norms.png   ||dL/dW|| per layer (forward order) at initialisation and after training, and
                       the ratio first-layer / last-conv gradient norm over the training steps
  results.json         every number the figures show, the data used and the settings

Data: CIFAR-10 when --data-dir holds its files (cifar-10-python.tar.gz or cifar-10-batches-py/);
MNIST when it holds MNIST's IDX files; without --data-dir the 8x8 digits that ship with
scikit-learn. The script says which. --train-size takes a subset (stratified, seeded).

Recipe (the paper's, shortened): SGD, momentum 0.9, weight decay 1e-4, batch 128; a warm-up epoch
(--warmup-epochs) at lr / 10 (the paper's warm-up of its deepest net, 0.01 until the training error
is below 80%: at 0.1 from the first step the 56-layer nets of both families sat near 80% training
error through their first epoch here), or with --warmup linear rising every step from lr / 10 to lr
(Goyal et al. 2017: the jump from 0.01 to 0.1 set ResNet-56 back here); then 0.1, divided by 10 at
half and at three quarters of the epochs (the paper's 32k and 48k of 64k steps, scaled to the run's
length; --milestones); random 4-pixel crops and flips on CIFAR-10 only. The plain-56 without batch
norm trains at --lr-no-bn (0.01): at 0.1 it diverges, and it is there to measure gradients, not to race.

  python benchmarks/plain_vs_residual.py --data-dir MNIST_DIR --train-size 10000 --epochs 16 --warmup linear \
      --out results/plain_vs_residual          # docs/benchmarks/plain_vs_residual.md: 53 min on one core
  python benchmarks/plain_vs_residual.py --data-dir MNIST_DIR --train-size 1000 --epochs 2 --out /tmp/smoke
  python benchmarks/plain_vs_residual.py --replot --out results/plain_vs_residual
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import striate as st  # noqa: E402
import striate.functional as F  # noqa: E402
import striate.vis  # noqa: E402,F401
from striate.data import DataLoader, stratified_split  # noqa: E402
from striate.data import transforms as T  # noqa: E402

# label -> (model name, builder options); the order of the legend
MODELS = {
    "plain-20": ("plain20", {}),
    "plain-56": ("plain56", {}),
    "ResNet-20": ("resnet20", {}),
    "ResNet-56": ("resnet56", {}),
    "plain-56 no BN": ("plain56", {"batch_norm": False}),
}
FLOW_FIELDS = ("weight_norm", "grad_norm", "output_grad_norm", "act_std", "act_zero")


def load(data_dir, train_size, test_size, seed):
    """(x_train, y_train, x_test, y_test, name, augment) as float32 standardised NHWC."""
    if data_dir is None:
        name = "digits"
    else:
        from striate.data.datasets import identify_files
        name, _ = identify_files(data_dir)
        if name is None:
            sys.exit(f"--data-dir {data_dir!r} holds neither CIFAR-10's nor MNIST's files.")
    ds = st.data.load_dataset(name, data_dir=data_dir)
    x, y = ds.x_train, ds.y_train
    if train_size and train_size < len(y):
        idx, _ = stratified_split(y, n_test=len(y) - train_size, seed=seed)
        x, y = x[idx], y[idx]
    xt, yt = ds.x_test, ds.y_test
    if test_size and test_size < len(yt):
        idx, _ = stratified_split(yt, n_test=len(yt) - test_size, seed=seed)
        xt, yt = xt[idx], yt[idx]
    scale = np.float32(1 / 255) if x.dtype == np.uint8 else np.float32(1)
    x, xt = x.astype(np.float32) * scale, xt.astype(np.float32) * scale
    standardize = T.Standardize().fit(x)
    return standardize(x), y, standardize(xt), yt, name, name == "cifar10"


def weighted_layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (st.nn.Conv2D, st.nn.Dense))]


def plan(args):
    """``(warm-up epochs, milestone epochs)`` of the run: a run too short for them keeps what fits (a
    1-epoch smoke run: neither)."""
    warmup = min(args.warmup_epochs, args.epochs - 1)
    milestones = sorted({round(f * args.epochs) for f in args.milestones} - set(range(warmup + 1)))
    return warmup, [m for m in milestones if m < args.epochs]


def train_one(label, name, options, data, args):
    """Train one model; return its record (errors per epoch, gradient norms)."""
    x, y, xt, yt, _, augment = data
    model = st.models.get(name, num_classes=int(y.max()) + 1, input_shape=x.shape[1:], rng=args.seed, **options)
    lr = args.lr_no_bn if options.get("batch_norm") is False else args.lr
    opt = st.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=args.weight_decay)
    warmup, milestones = plan(args)
    schedule = st.optim.MultiStepLR(opt, milestones=milestones, gamma=0.1) if milestones else None
    if warmup:   # the ramp's epochs come first; the milestones count from the run's start
        after = st.optim.MultiStepLR(opt, milestones=[m - warmup for m in milestones], gamma=0.1) if milestones else opt
        schedule = st.optim.LinearWarmup(after, warmup_epochs=warmup, start_factor=0.1)
    h = x.shape[1]
    transform = T.Compose([T.RandomCrop((h, h), padding=4), T.RandomHorizontalFlip(0.5)]) if augment else None
    loader = DataLoader(x, y, batch_size=args.batch_size, shuffle=True, transform=transform, rng=args.seed + 1)
    probe_x, probe_y = x[:args.probe], y[:args.probe]  # a fixed batch for the per-layer measurements
    init = st.vis.gradient_flow(model, probe_x, probe_y)
    layers = weighted_layers(model)
    record = {"model": name, "options": options, "lr": lr, "params": model.num_parameters(),
              "layers": [n for n, _ in layers], "train_error": [], "test_error": [], "train_loss": [],
              "milestones": milestones,
              "step_error": [], "step_lr": [], "grad_steps": [], "grad_norms": [], "diverged_at": None,
              "init": {k: getattr(init, k).tolist() for k in FLOW_FIELDS},
              "init_loss": init.loss}
    ramp = warmup * len(loader) if args.warmup == "linear" else 0   # steps of a per-step warm-up
    step, started = 0, time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        wrong = seen = 0
        loss_sum = 0.0
        for xb, yb in loader:
            if step < ramp:   # lr / 10 at the first step, rising every step to lr at the end of the warm-up
                for group in opt.param_groups:
                    group["lr"] = lr * (0.1 + 0.9 * step / ramp)
            logits = model(st.Tensor(xb))
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            step += 1
            if step % args.grad_every == 0 or step == 1:
                record["grad_steps"].append(step)
                record["grad_norms"].append([float(np.linalg.norm(m.w.grad)) for _, m in layers])
            opt.step()
            value = float(loss.data)
            if not np.isfinite(value):
                record["diverged_at"] = step
                break
            record["step_lr"].append(opt.param_groups[0]["lr"])
            errors = int((logits.data.argmax(1) != yb).sum())
            wrong, seen, loss_sum = wrong + errors, seen + len(yb), loss_sum + value * len(yb)
            record["step_error"].append(errors / len(yb))
        if record["diverged_at"]:
            print(f"  {label}: the loss diverged at step {record['diverged_at']}", flush=True)
            break
        if schedule is not None:
            schedule.step()
        test = st.training.evaluate(model, DataLoader(xt, yt, batch_size=256), details=False)
        record["train_error"].append(wrong / seen)
        record["train_loss"].append(loss_sum / seen)
        record["test_error"].append(1 - test["accuracy"])
        print(f"  {label:16s} epoch {epoch + 1}/{args.epochs}: train error {100 * wrong / seen:5.1f}%  "
              f"test error {100 * (1 - test['accuracy']):5.1f}%  ({time.perf_counter() - started:.0f}s)", flush=True)
    end = st.vis.gradient_flow(model, probe_x, probe_y)
    record["end"] = {k: getattr(end, k).tolist() for k in FLOW_FIELDS}
    record["end_loss"] = end.loss
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def plot_errors(results, path, data_note):
    plt = st.vis.draw.pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours = {"20": "#ff7f0e", "56": "#d62728"}
    for ax, family in zip(axes, ("plain", "ResNet")):
        for label, r in results.items():
            if not label.startswith(family) or "no BN" in label:
                continue
            epochs = np.arange(1, len(r["train_error"]) + 1)
            c = colours[label.split("-")[1][:2]]
            ax.plot(epochs, 100 * np.array(r["train_error"]), "--", color=c, lw=1.2, label=f"{label} train")
            ax.plot(epochs, 100 * np.array(r["test_error"]), "-", color=c, lw=2.4, label=f"{label} test")
        ax.set_title(f"{family} nets")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        # linear below 1%, logarithmic above: the last epochs' tenths of a percent stay apart
        ax.set_yscale("symlog", linthresh=1, linscale=1.5)
        ax.set_ylim(0, 100)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1, 3, 10, 30, 100], ["0", "0.25", "0.5", "0.75", "1", "3", "10", "30", "100"])
    axes[0].set_ylabel("error (%)")
    fig.suptitle(f"training (dashed) and test (bold) error\n{data_note}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_gradients(results, path, data_note):
    plt = st.vis.draw.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for label, r in results.items():
        depth = np.arange(1, len(r["layers"]) + 1)
        style = ":" if "no BN" in label else "-"
        axes[0].plot(depth, r["init"]["grad_norm"], style, marker="o", ms=2, lw=1.2, label=label)
        axes[1].plot(depth, r["end"]["grad_norm"], style, marker="o", ms=2, lw=1.2, label=label)
        if r["grad_norms"]:
            g = np.array(r["grad_norms"])
            axes[2].plot(r["grad_steps"], g[:, 0] / g[:, -2], style, lw=1.2, label=label)  # first conv / last conv
    for ax, title in zip(axes, ("at initialisation", "after training", "first conv / last conv, during training")):
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("||dL/dW||")
    axes[0].set_xlabel("layer (forward order)")
    axes[1].set_xlabel("layer (forward order)")
    axes[2].set_xlabel("training step")
    axes[2].set_ylabel("ratio of gradient norms")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"per-layer weight-gradient norms\n{data_note}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_note(meta):
    """The figures' line naming the data and the schedule, from results.json's settings."""
    settings = argparse.Namespace(**meta["settings"])
    warmup, milestones = plan(settings)
    return (f"{meta['data']}, {meta['train_images']} training images{' (subset)' if settings.train_size else ''}, "
            f"{meta['test_images']} test, {settings.epochs} epochs"
            + (f", lr {'/ 10' if getattr(settings, 'warmup', 'constant') == 'constant' else 'rising from / 10'} "
               f"for {warmup} epoch(s)" if warmup else "")
            + (f", lr / 10 after epochs {', '.join(map(str, milestones))}" if milestones else ""))


def replot(out):
    path = os.path.join(out, "results.json")
    if not os.path.isfile(path):
        sys.exit(f"--replot: {path} does not exist; run the experiment into --out {out} first.")
    with open(path) as f:
        meta = json.load(f)
    note = run_note(meta)
    plot_errors(meta["results"], os.path.join(out, "training_error.png"), note)
    plot_gradients(meta["results"], os.path.join(out, "gradient_norms.png"), note)
    print(f"wrote {out}/training_error.png, gradient_norms.png from {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="CIFAR-10 or MNIST files (default: the embedded 8x8 digits)")
    p.add_argument("--train-size", type=int, default=0, help="training images used (0 = all)")
    p.add_argument("--test-size", type=int, default=2000, help="test images evaluated each epoch (2000)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--lr-no-bn", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-epochs", type=int, default=1, help="epochs at lr / 10 before the rate itself (1)")
    p.add_argument("--warmup", choices=("constant", "linear"), default="constant",
                   help="the warm-up's rate: lr / 10 throughout (constant, the paper's), or rising every step "
                        "from lr / 10 to lr (linear, Goyal et al. 2017)")
    p.add_argument("--milestones", default="0.5,0.75",
                   help="fractions of the epochs after which lr is divided by 10 ('0.5,0.75'; '' keeps it constant)")
    p.add_argument("--grad-every", type=int, default=10, help="steps between gradient-norm records (10)")
    p.add_argument("--probe", type=int, default=64, help="images of the fixed batch measured at init and end (64)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated labels of: " + ", ".join(MODELS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="plain_vs_residual")
    p.add_argument("--replot", action="store_true", help="draw the figures again from --out's results.json, no training")
    args = p.parse_args(argv)
    if args.replot:
        return replot(args.out)
    try:
        args.milestones = [float(f) for f in args.milestones.split(",") if f.strip()]
    except ValueError:
        p.error(f"--milestones must be comma-separated fractions such as 0.5,0.75. Received: {args.milestones!r}")
    if args.warmup_epochs < 0:
        p.error(f"--warmup-epochs must be >= 0. Received: {args.warmup_epochs}")
    if any(not 0 < f < 1 for f in args.milestones):
        p.error(f"--milestones must lie between 0 and 1 (fractions of the epochs). Received: {args.milestones}")
    labels = [s.strip() for s in args.models.split(",") if s.strip()]
    unknown = [s for s in labels if s not in MODELS]
    if unknown:
        p.error(f"unknown --models {unknown}; choose from {', '.join(MODELS)}")
    os.makedirs(args.out, exist_ok=True)
    st.random.manual_seed(args.seed)
    data = load(args.data_dir, args.train_size, args.test_size, args.seed)
    name = data[4]
    meta = {"data": name, "train_images": len(data[1]), "test_images": len(data[3]), "settings": vars(args)}
    note = run_note(meta)
    print(f"data: {note}", flush=True)
    results = {}
    for label in labels:
        model_name, options = MODELS[label]
        results[label] = train_one(label, model_name, options, data, args)
    meta["results"] = results
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(meta, f, indent=1)
    plot_errors(results, os.path.join(args.out, "training_error.png"), note)
    plot_gradients(results, os.path.join(args.out, "gradient_norms.png"), note)
    print("\nfinal training error / test error, and ||dL/dW|| of the first conv / last conv (init -> end):")
    for label, r in results.items():
        tr = f"{100 * r['train_error'][-1]:5.1f}%" if r["train_error"] else "  -  "
        te = f"{100 * r['test_error'][-1]:5.1f}%" if r["test_error"] else "  -  "
        gi, ge, we = r["init"]["grad_norm"], r["end"]["grad_norm"], r["end"]["weight_norm"]
        print(f"  {label:16s} {tr} / {te}   init {gi[0]:.3g} / {gi[-2]:.3g}  end {ge[0]:.3g} / {ge[-2]:.3g}"
              f"   (||W|| at the end {we[0]:.3g} / {we[-2]:.3g}; {r['seconds']:.0f}s)")
    print(f"wrote {args.out}/training_error.png, gradient_norms.png, results.json")


if __name__ == "__main__":
    main()
