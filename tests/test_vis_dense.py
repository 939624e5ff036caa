"""striate.vis.draw_boxes and draw_mask: the saved pictures are opened again and their pixels checked
where the boxes' edges and the mask's classes are."""
import numpy as np
import pytest

pytest.importorskip("PIL")

from PIL import Image  # noqa: E402

from striate import vis  # noqa: E402
from striate.vis.dense import PALETTE  # noqa: E402

BLUE, GREEN = (0, 130, 200), (60, 180, 75)   # the palette's colours of classes 3 and 1


def _saved(picture, tmp_path):
    path = tmp_path / "drawn.png"
    picture.save(path)
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_palette_colours_are_the_ones_checked():
    assert PALETTE[3] == BLUE and PALETTE[1] == GREEN


def test_box_edges_in_their_class_colour(tmp_path):
    image = np.zeros((32, 32, 1), np.uint8)
    pred = {"boxes": np.array([[4.0, 6.0, 20.0, 30.0], [22.0, 2.0, 30.0, 10.0]]), "scores": np.array([0.9, 0.1]),
            "classes": np.array([3, 1])}
    a = _saved(vis.draw_boxes(image, pred, [str(d) for d in range(10)], min_score=0.3), tmp_path)
    f = 8   # 32 pixels enlarged to 256
    assert a.shape == (256, 256, 3)
    mid = 18 * f
    assert tuple(a[mid, 4 * f]) == BLUE and tuple(a[mid, 4 * f + 1]) == BLUE      # left edge, 2 pixels wide
    assert tuple(a[mid, 20 * f - 1]) == BLUE                                      # right edge: last inside column
    assert tuple(a[30 * f - 1, 12 * f]) == BLUE                                   # bottom edge
    assert tuple(a[mid, 4 * f - 1]) == (0, 0, 0) and tuple(a[mid, 20 * f]) == (0, 0, 0)  # just outside
    assert tuple(a[mid, 12 * f]) == (0, 0, 0)                                     # the inside is the picture
    assert tuple(a[6 * f - 8, 4 * f + 1]) == BLUE                                 # the label's background above
    # the box below min_score is not drawn anywhere
    assert not (a == np.array(GREEN)).all(axis=-1).any()


def test_boxes_on_a_colour_picture_keep_its_pixels(tmp_path):
    image = np.full((40, 48, 3), (10, 200, 90), np.uint8)
    pred = {"boxes": np.array([[10.0, 12.0, 30.0, 34.0]]), "scores": np.array([0.8]), "classes": np.array([1])}
    a = _saved(vis.draw_boxes(image, pred, ["a", "b"]), tmp_path)
    f = 7   # ceil(256 / 40)
    assert a.shape == (40 * f, 48 * f, 3)
    assert tuple(a[20 * f, 10 * f]) == GREEN
    assert tuple(a[20 * f, 20 * f]) == (10, 200, 90) and tuple(a[39 * f, 47 * f]) == (10, 200, 90)


def test_mask_colours_where_the_mask_is(tmp_path):
    image = np.full((32, 32), 50, np.uint8)          # a 2-D gray picture
    mask = np.zeros((32, 32), np.uint8)
    mask[16:28, 16:28] = 4                           # class 4: colour of index 3 (blue)
    mask[20:24, 4:10] = 2                            # class 2: colour of index 1 (green)
    mask[28:30, 2:6] = 255                           # ignored: not tinted
    alpha = 0.55
    a = _saved(vis.draw_mask(image, mask, ["background", "a", "b", "c", "d"], alpha=alpha), tmp_path)
    f = 8
    tint = lambda colour: tuple(int(round((1 - alpha) * 50 + alpha * c)) for c in colour)  # noqa: E731
    assert tuple(a[22 * f, 22 * f]) == tint(BLUE)
    assert tuple(a[22 * f, 6 * f]) == tint(GREEN)
    assert tuple(a[29 * f, 3 * f]) == (50, 50, 50)   # ignored pixel
    assert tuple(a[10 * f, 25 * f]) == (50, 50, 50)  # background
    # the legend in the corner names both classes present with their colour squares
    assert {tuple(a[7, 7]), tuple(a[20, 7])} == {BLUE, GREEN}


def test_mask_of_another_size_is_refused():
    with pytest.raises(ValueError, match="mask"):
        vis.draw_mask(np.zeros((16, 16, 1), np.uint8), np.zeros((8, 8), np.uint8), ["background", "a"])


def test_other_classes_guessed_for_a_drawn_object_are_left_out(tmp_path):
    image = np.zeros((32, 32, 1), np.uint8)
    pred = {"boxes": np.array([[4.0, 6.0, 20.0, 30.0], [4.0, 7.0, 20.0, 30.0], [18.0, 4.0, 30.0, 12.0]]),
            "scores": np.array([0.9, 0.6, 0.5]), "classes": np.array([3, 1, 1])}
    names = [str(d) for d in range(10)]
    green = lambda a: (a == np.array(GREEN)).all(axis=-1)  # noqa: E731
    a = _saved(vis.draw_boxes(image, pred, names), tmp_path)
    f = 8
    assert tuple(a[18 * f, 4 * f]) == BLUE                   # the best guess at the first object
    assert not green(a[:, : 18 * f]).any()                   # its weaker class-1 twin is not drawn
    assert tuple(a[8 * f, 30 * f - 1]) == GREEN              # a class-1 box elsewhere is
    both = _saved(vis.draw_boxes(image, pred, names, same_object=None), tmp_path)
    assert green(both[:, : 18 * f]).any()                     # drawn with it when asked
