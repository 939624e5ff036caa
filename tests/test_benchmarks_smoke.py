"""The benchmark suite's PyTorch twins stay honest: same parameter count, same outputs as striate.

The benchmarks themselves are not run here (they take minutes); ``python benchmarks/run.py --quick``
is their smoke test. This only guards the premise of every ratio the suite prints: that striate and
PyTorch run the same network.
"""
import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("striate_benchmarks_run", os.path.join(BENCH, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # puts benchmarks/ on sys.path for its helper modules
    return module


@pytest.mark.parametrize("name, params", [("lenet5", 61_706), ("resnet20", 269_722), ("resnet32", 464_154),
                                          ("resnet56", 853_018), ("vgg11_bn_cifar", 9_228_362)])
def test_twin_has_the_same_parameters(run, name, params):
    s_model, t_model = run.build_twins(name)
    n_torch = sum(p.numel() for p in t_model.parameters())
    assert s_model.num_parameters() == n_torch == params
    # the same tensors one by one, not just the same total
    s_shapes = sorted(int(np.prod(p.shape)) for p in s_model.parameters())
    t_shapes = sorted(p.numel() for p in t_model.parameters())
    assert s_shapes == t_shapes


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "resnet32", "vgg11_bn_cifar"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_twin_computes_the_same_function(run, name, mode):
    import striate as st
    from _torch_models import to_torch_images

    s_model, t_model = run.build_twins(name, seed=3)
    s_model.train(mode == "train")
    t_model.train(mode == "train")
    x, _ = run._batch(name, n=4, seed=1)
    with st.no_grad():
        ys = s_model(st.Tensor(x)).data
    with torch.no_grad():
        yt = t_model(to_torch_images(x)).numpy()
    assert ys.shape == yt.shape == (4, 10)
    np.testing.assert_allclose(ys, yt, rtol=1e-4, atol=1e-5)


def test_copy_weights_refuses_a_different_architecture(run):
    import striate as st
    from _torch_models import copy_weights, torch_resnet20

    with pytest.raises(ValueError, match="names differ"):
        copy_weights(st.models.lenet5(), torch_resnet20())


def test_twin_check_catches_a_drifted_twin(run):
    # a twin with one different layer (here: a ReLU turned into a Tanh) must fail the suite's check
    pair = run.Pair(torch, "lenet5")
    pair.t_model.classifier[2] = torch.nn.Tanh()
    with pytest.raises(AssertionError, match="outputs differ"):
        run.check_pair(pair, steps=2)


def test_pair_at_another_batch_and_image_size_passes_the_twin_check(run):
    # the sweep's workloads: ResNet-20 at batch 3 on 64-pixel images, same function and losses
    pair = run.Pair(torch, "resnet20", batch=3, image=64)
    assert pair.x.shape == (3, 64, 64, 3) and tuple(pair.tx.shape) == (3, 3, 64, 64)
    check = run.check_pair(pair, steps=2)
    assert check["batch"] == 3 and check["max_diff_eval"] < 1e-4


def test_workload_repeats_scale_with_the_batch(run):
    reps = run.REPEATS["full"]
    assert run._repeats(reps, "train", "resnet20", 128) == reps["train_resnet20"]
    assert run._repeats(reps, "train", "resnet20", 512) == 3                     # 12 * 128 / 512
    assert run._repeats(reps, "train", "resnet20", 32) == 3 * reps["train_resnet20"]   # capped
    assert ("vgg11_bn_cifar", 128) in run.WORKLOADS
    assert {("resnet20", 32), ("resnet20", 512)} <= set(run.EXTRA_WORKLOADS)


def test_sweep_measures_plots_and_reports_a_tiny_plan(run, tmp_path):
    # every sweep of benchmarks/sweep.py once, at one tiny point each (the real sweep takes minutes)
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location("striate_benchmarks_sweep", os.path.join(BENCH, "sweep.py"))
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    plan = dict(batches=(2,), image_batch=2, images=(40,), depth_batch=2, depths=(32,),
                memory_batches=(2,), runs=1, rounds=1, warmup=0,
                ops_batches=(2, 4), ops_steps=1)
    results = sweep.run_sweeps(torch, set(sweep.SECTIONS), plan, threads=1)
    assert [r["batch"] for r in results["batch"]] == [2]
    assert [r["image"] for r in results["image"]] == [40]
    assert [r["model"] for r in results["depth"]] == ["resnet32"]
    for r in results["batch"] + results["image"] + results["depth"]:
        assert r["s_ips"] > 0 and r["t_ips"] > 0 and r["ratio"] > 0
    assert results["memory"][0]["batch"] == 2 and results["memory"][0]["s_mb"] >= 0
    ops = {(r["who"], r["batch"], r["op"]): r["ms_per_image"] for r in results["ops"]}
    for who in ("striate", "torch"):   # the conv ops are seen, and no op took longer than the step
        assert any(w == who and "onv" in op for w, _, op in ops)
        assert max(v for (w, b, op), v in ops.items() if w == who and b == 4 and op != "(whole step)") \
            <= ops[(who, 4, "(whole step)")]
    out = tmp_path / "cost.md"
    sweep.plot(results, str(tmp_path / "cost.png"))
    sweep.write_report(results, {"load": "test"}, str(out), "sweep test", "quick")
    text = out.read_text()
    for title in sweep.TITLES.values():
        assert title in text
    assert "![cost growth](cost.png)" in text
    from PIL import Image
    with Image.open(tmp_path / "cost.png") as im:
        grey = np.asarray(im.convert("L"))
    assert grey.shape[1] > 1000 and len(np.unique(grey)) > 10   # four drawn panels, not a blank image


@pytest.mark.parametrize("name", ["resnet20", "vgg11_bn_cifar"])
def test_folded_twins_compute_the_unfolded_function(run, name):
    # the infer section's "BN folded" rows compare st.nn.fold_batch_norm with torch's twin folded alike
    import copy

    import striate as st
    from _torch_models import fold_torch_twin, to_torch_images

    s_model, t_model = run.build_twins(name, seed=2)
    rng = np.random.default_rng(0)
    with torch.no_grad():   # real statistics on both sides (copy_weights gives torch striate's)
        for m in s_model.modules():
            if isinstance(m, st.nn.BatchNorm):
                m.running_var[:] = rng.uniform(0.3, 2.0, m.num_features)
                m.running_mean[:] = rng.normal(0, 0.3, m.num_features)
    from _torch_models import copy_weights
    copy_weights(s_model, t_model)
    t_folded = fold_torch_twin(copy.deepcopy(t_model))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in t_folded.modules())
    s_folded = st.nn.fold_batch_norm(s_model)
    x, _ = run._batch(name, n=3, seed=4)
    with st.no_grad(), torch.no_grad():
        want = t_model.eval()(to_torch_images(x)).numpy()
        got_t = t_folded(to_torch_images(x)).numpy()
        got_s = s_folded(st.Tensor(x)).data
    np.testing.assert_allclose(got_t, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_s, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["centernet", "unet"])
def test_dense_task_twins_compute_the_same_outputs_and_losses(run, name):
    """The detector's and the U-Net's twins (benchmarks/bench_dense.py): same weights, outputs and loss."""
    spec = importlib.util.spec_from_file_location("striate_bench_dense", os.path.join(BENCH, "bench_dense.py"))
    dense = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dense)
    row = dense.bench(name, batch=2, size=32, repeat=1, threads=1)  # exits if the twins differ
    assert row["twin_rel_error"] < 1e-4
    assert row["train_ratio"] > 0 and row["infer_ratio"] > 0
