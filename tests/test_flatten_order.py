"""The order of a flattened feature map, striate's (h, w, c) against channels-first (c, h, w): one
function (striate.nn.layout.flatten_perm), used by ONNX export and import and by PyTorch weights."""
from __future__ import annotations

import re

import numpy as np
import pytest

from source_files import library_sources
from striate.nn.layout import flatten_perm

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
    sources = dict(library_sources())
    copies = [path for path, text in sources.items() if path != "nn/layout.py" and spelled.search(text)]
    callers = {path for path, text in sources.items() if "flatten_perm(" in text}
    assert not copies, copies
    assert {"onnx/export.py", "onnx/load.py", "io/torch_weights.py"} <= callers
