"""Names a user types: one spelling rule and one "did you mean" (striate.names), used by the models
registry, data sets, layers, initialisers, striate.vis and the command line."""
from __future__ import annotations

import re

import numpy as np
import pytest

import striate as st
from source_files import library_sources
from striate import names

def test_spelling_rule_and_closest_name():
    assert names.name_key("Fashion-MNIST") == names.name_key("fashion_mnist") == "fashionmnist"
    assert names.name_key("ResNet 20") == "resnet20"
    assert names.match("LeNet-5", ["alexnet", "lenet5"]) == "lenet5"
    assert names.match("lenet6", ["alexnet", "lenet5"]) is None
    assert names.closest("fashion-mnits", ["mnist", "fashion_mnist"]) == "fashion_mnist"   # the original spelling
    assert names.closest("zzz", ["mnist", "cifar10"]) is None
    assert names.did_you_mean("adamm", ["sgd", "adam"]) == " Did you mean 'adam'?"
    assert names.did_you_mean("zzz", ["sgd", "adam"]) == ""
    # layer names keep their dots: "features.1" is nearer "features.10" than to "features.2" only as typed
    assert names.closest("features.1O", ["features.10", "features.2"], exact_spelling=True) == "features.10"


@pytest.mark.parametrize("call,hint", [
    (lambda: st.models.get("alexnt"), "Did you mean 'alexnet'?"),
    (lambda: st.models.get("ResNet-56"), "Did you mean 'resnet56'?"),
    (lambda: st.data.load_dataset("fashion-mnits"), "Did you mean 'fashion_mnist'?"),
    (lambda: st.nn.Dense(3, activation="relu6"), "Did you mean 'relu'?"),
    (lambda: st.nn.init.get("he_normall"), "Did you mean 'he_normal'?"),
    (lambda: st.models.get("digits_cnn").freeze(until="featurs"), "Did you mean 'features'?"),
])
def test_every_lookup_suggests_the_closest_name(call, hint):
    with pytest.raises(ValueError) as info:
        call()
    assert hint in str(info.value), str(info.value)


def test_vis_layer_lookup_suggests_the_closest_layer():
    from striate import vis
    model = st.models.get("digits_cnn")
    with pytest.raises(ValueError, match=r"no layer named 'feature.3'. Did you mean 'features.3'\?"):
        vis.activations(model, np.zeros((8, 8, 1), np.float32), ["feature.3"])


def test_data_set_names_are_spelled_freely():
    from striate.data.datasets import canonical_name
    assert canonical_name("Fashion MNIST") == "fashion_mnist" and canonical_name("CIFAR-10") == "cifar10"


def test_one_home_for_suggestions():
    """difflib and "Did you mean" appear only in striate/names.py: every other module calls it."""
    copies = [f"{path}: {pattern}" for path, text in library_sources() if path != "names.py"
              for pattern in (r"\bdifflib\b", r"Did you mean", r"def _key\(") if re.search(pattern, text)]
    assert not copies, copies
