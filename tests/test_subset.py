"""Parts of a data set: a class subset renumbered in the order given, N training images per class, a
stratified validation split; and the run records that let evaluate cut the same part again."""
import numpy as np
import pytest

import striate as st
from striate.data import Dataset, sample_per_class, select_classes, validation_split


def _toy(n_classes=4, per=6):
    y = np.repeat(np.arange(n_classes), per)
    x = (y[:, None, None, None] * np.ones((1, 2, 2, 1))).astype(np.uint8)   # each image shows its label
    return Dataset(x, y, x[::2], y[::2], [f"c{i}" for i in range(n_classes)], name="toy")


def test_select_classes_renumbers_in_the_order_given():
    part = select_classes(_toy(), [3, 1])
    assert part.class_names == ["c3", "c1"] and part.num_classes == 2
    # the label of each image is its place in the list; its pixels still say which class it was
    assert set(zip(part.y_train.tolist(), part.x_train[:, 0, 0, 0].tolist())) == {(0, 3), (1, 1)}
    assert len(part.y_train) == 12 and len(part.y_test) == 6


@pytest.mark.parametrize("classes,message", [([2], "at least two classes"), ([2, 2], "each class once"),
                                             ([0, 4], r"class indices of toy, 0\.\.3"), ([-1, 0], "0..3")])
def test_select_classes_refuses_what_cannot_be_a_classifier(classes, message):
    with pytest.raises(ValueError, match=message):
        select_classes(_toy(), classes)


def test_sample_per_class_and_validation_split():
    few = sample_per_class(_toy(), 2, seed=0)
    assert np.bincount(few.y_train).tolist() == [2, 2, 2, 2] and len(few.y_test) == 12
    assert np.array_equal(sample_per_class(_toy(), 2, seed=0).x_train, few.x_train)   # seeded
    with pytest.raises(ValueError, match="has only 6 training images"):
        sample_per_class(_toy(), 7)
    with pytest.raises(ValueError, match="per_class must be a positive integer"):
        sample_per_class(_toy(), 0)
    x_tr, y_tr, x_val, y_val = validation_split(_toy(), 0.25, seed=0)
    assert set(np.bincount(y_val, minlength=4).tolist()) <= {1, 2}   # stratified: 6 images over 4 classes
    assert len(y_val) == 6 and len(y_tr) == 18 and set(y_val.tolist()) == {0, 1, 2, 3}
    assert validation_split(_toy(), 0.0)[2] is None
    with pytest.raises(ValueError, match=r"fraction must lie in \[0, 1\)"):
        validation_split(_toy(), 1.0)


def test_run_data_reads_old_and_new_records():
    new = {"dataset": "digits", "data_dir": "/d", "classes": [5, 6], "config": {"verify": False}}
    assert st.training.run_data(new) == {"dataset": "digits", "data_dir": "/d", "classes": [5, 6], "verify": False}
    old = {"dataset": "digits", "config": {"classes": "7,8,9"}}   # a fine-tune recorded its option's text
    assert st.training.run_data(old)["classes"] == [7, 8, 9]
    trained = {"dataset": "mnist", "config": {"data_dir": "/m", "verify": True}}
    assert st.training.run_data(trained) == {"dataset": "mnist", "data_dir": "/m", "classes": None, "verify": True}
