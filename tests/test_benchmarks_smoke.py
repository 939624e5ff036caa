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


@pytest.mark.parametrize("name, params", [("lenet5", 61_706), ("resnet20", 269_722)])
def test_twin_has_the_same_parameters(run, name, params):
    s_model, t_model = run.build_twins(name)
    n_torch = sum(p.numel() for p in t_model.parameters())
    assert s_model.num_parameters() == n_torch == params
    # the same tensors one by one, not just the same total
    s_shapes = sorted(int(np.prod(p.shape)) for p in s_model.parameters())
    t_shapes = sorted(p.numel() for p in t_model.parameters())
    assert s_shapes == t_shapes


@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
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
