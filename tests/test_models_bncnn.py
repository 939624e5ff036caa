"""The batch-norm CNNs of the MNIST and Fashion-MNIST recipes: shapes and parameter counts by hand."""
import numpy as np

import striate as st


def _count(widths, classes=10, kernel1=5):
    w1, w2, w3 = widths
    convs = kernel1 * kernel1 * 1 * w1 + 9 * w1 * w2 + 9 * w2 * w3   # no conv biases (batch norm follows)
    bn = 2 * (w1 + w2 + w3)                                           # gamma and beta per channel
    dense = 7 * 7 * w3 * classes + classes                            # flatten of the 7x7 map
    return convs + bn + dense


def test_parameter_counts_and_output_shape():
    for builder, widths in ((st.models.mnist_cnn, (16, 32, 64)), (st.models.fashion_cnn, (32, 64, 128))):
        model = builder(rng=0)
        assert model.num_parameters() == _count(widths)
        model.eval()
        out = model(st.Tensor(np.zeros((2, 28, 28, 1), np.float32)))
        assert out.shape == (2, 10)
    assert st.models.get("mnist_cnn", num_classes=3).num_parameters() == _count((16, 32, 64), classes=3)


def test_registered_in_the_zoo_and_recipes():
    from striate.cli.common import RECIPES
    assert {"mnist_cnn", "fashion_cnn"} <= set(st.models.list())
    assert RECIPES["mnist"]["model"] == "mnist_cnn" and RECIPES["fashion_mnist"]["model"] == "fashion_cnn"
    # digits are not mirror-symmetric: no flips in the digit recipes; clothes are
    assert "flip" not in RECIPES["mnist"]["augment"] and "flip" not in RECIPES["digits"]["augment"]
    assert "flip" in RECIPES["fashion_mnist"]["augment"]
    # the wide flattened head needs a warm-up at the recipe's rate; LeNet-5 keeps its own settings
    fashion = RECIPES["fashion_mnist"]
    assert fashion["warmup"] == 1 < fashion["epochs"] and fashion["models"]["lenet5"] == {"lr": 0.02, "warmup": 0}
