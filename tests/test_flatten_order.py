"""The order of a flattened feature map, striate's (h, w, c) against channels-first (c, h, w): one
function (striate.nn.layout.flatten_perm), used by ONNX export and import and by PyTorch weights."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from striate.nn.layout import flatten_perm

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "striate")


@pytest.mark.parametrize("h,w,c", [(1, 1, 5), (2, 3, 4), (5, 5, 16), (3, 1, 2)])
def test_flatten_perm_maps_nhwc_features_to_nchw_features(h, w, c):
    x = np.random.default_rng(0).standard_normal((2, h, w, c))
    nhwc = x.reshape(2, -1)                                   # striate's Flatten
    nchw = x.transpose(0, 3, 1, 2).reshape(2, -1)            # PyTorch's / ONNX's flatten
    perm = flatten_perm(h, w, c)
    np.testing.assert_array_equal(nhwc[:, perm], nchw)
    np.testing.assert_array_equal(nchw[:, np.argsort(perm)], nhwc)
    # a dense layer gives the same outputs in both layouts once its rows follow the permutation
    wt = np.random.default_rng(1).standard_normal((h * w * c, 3))  # channels-first rows
    np.testing.assert_allclose(nhwc @ wt[np.argsort(perm)], nchw @ wt)


def test_one_home_for_the_flatten_order():
    """No other module spells out the (h, w, c) -> (c, h, w) permutation; export, import and the
    PyTorch weight loader call flatten_perm."""
    spelled = re.compile(r"transpose\(2,\s*0,\s*1\)\.ravel\(\)")
    copies, callers = [], set()
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), ROOT)
                text = open(os.path.join(folder, name), encoding="utf-8").read()
                if rel != os.path.join("nn", "layout.py") and spelled.search(text):
                    copies.append(rel)
                if "flatten_perm(" in text:
                    callers.add(rel)
    assert not copies, copies
    assert {os.path.join("onnx", "export.py"), os.path.join("onnx", "load.py"),
            os.path.join("io", "torch_weights.py")} <= callers
