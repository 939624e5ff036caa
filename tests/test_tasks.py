"""Localisation, detection and segmentation: the zoo's models, their tasks (target encoding, loss,
decoding) and short trainings on small synthetic canvases that must show clear progress."""
import numpy as np
import pytest

import striate as st
from striate import models
from striate.detection import box_iou
from striate.training import tasks
from striate.training.tasks import CenterNetDetection, Localization, Segmentation, box_targets

DIGITS = None


def _digits():
    global DIGITS
    if DIGITS is None:
        from sklearn.datasets import load_digits
        d = load_digits()
        DIGITS = (d.images / 16.0, d.target)
    return DIGITS


def canvases(n, size=32, count=(1, 1), scale=2, seed=0):
    """``n`` black canvases with ``count`` non-overlapping 8x8 digits upscaled ``scale`` times:
    images (n, size, size, 1), per-image {'boxes' (tight, xyxy), 'classes'}, masks (0 background,
    1 + digit on the strokes)."""
    images, labels = _digits()
    rng = np.random.default_rng(seed)
    x = np.zeros((n, size, size, 1), np.float32)
    masks = np.zeros((n, size, size), np.int64)
    targets = []
    for i in range(n):
        boxes, classes = [], []
        for _ in range(rng.integers(count[0], count[1] + 1)):
            j = rng.integers(len(images))
            img = np.kron(images[j], np.ones((scale, scale)))
            rows, cols = np.flatnonzero(img.max(1) > 0.2), np.flatnonzero(img.max(0) > 0.2)
            img = img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            h, w = img.shape
            for _ in range(100):
                y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
                box = np.array([x0, y0, x0 + w, y0 + h], float)
                if not boxes or box_iou(box[None], np.array(boxes)).max() == 0:
                    break
            else:
                continue
            x[i, y0:y0 + h, x0:x0 + w, 0] = img
            masks[i, y0:y0 + h, x0:x0 + w][img > 0.3] = labels[j] + 1
            boxes.append(box)
            classes.append(int(labels[j]))
        targets.append({"boxes": np.array(boxes).reshape(-1, 4), "classes": np.array(classes, np.int64)})
    return x, targets, masks


class Batches:
    """(images, targets) batches, reshuffled every pass; targets as a list of dicts or stacked masks."""

    def __init__(self, x, y, batch_size, seed=0):
        self.x, self.y, self.batch_size, self.rng = x, y, batch_size, np.random.default_rng(seed)

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(len(self.x))
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            yield self.x[idx], (self.y[idx] if isinstance(self.y, np.ndarray) else [self.y[i] for i in idx])


# --------------------------------------------------------------------------- models
@pytest.mark.parametrize("name, outputs", [("localizer", (14,)), ("centernet", (16, 16, 14)),
                                           ("fcn", (64, 64, 11)), ("unet", (64, 64, 11))])
def test_zoo_models_summarise_with_receptive_fields(name, outputs):
    assert name in models.list()
    model = models.get(name, rng=0)
    shape = models.info(name).input_shape
    s = st.summary(model, shape)
    assert s.total_params == model.num_parameters() > 0
    assert "unknown" not in str(s)
    assert model(st.Tensor(np.zeros((2,) + shape, np.float32))).shape == (2,) + outputs
    spatial = [r for r in s.rows if r.rf is not None]
    if len(outputs) == 3:  # dense outputs: the last layer has a field and the output's stride
        assert s.rows[-1].rf is not None and s.rows[-1].jump == (64 // outputs[0],) * 2
        # upsampling layers keep the field: never smaller than the deepest layer's before them
        deepest = max(r.rf[0] for r in spatial if r.type != "ConvTranspose2D")
        assert s.rows[-1].rf[0] >= deepest - 2 * 4 or name == "centernet"


def test_fcn_starts_as_bilinear_upsampling_of_its_coarse_scores():
    model = models.fcn(num_classes=3, rng=0)
    up2, up4 = model.up2.w.data, model.up4.w.data
    assert np.allclose(up2[..., 0, 0], np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25]))
    assert np.all(up2[..., 0, 1] == 0) and np.all(up4[..., 1, 2] == 0)  # channel-wise
    assert np.all(model.score4.w.data == 0)  # the skip starts silent


def test_unet_concatenates_skips_and_keeps_the_input_size():
    model = models.unet(num_classes=4, widths=(4, 8, 8, 16), input_shape=(24, 24, 1), rng=0)
    s = st.summary(model, (24, 24, 1))
    assert s.row("up0.convs.0").params == 3 * 3 * (4 + 4) * 4          # its input: skip (4) + upsampled (4)
    assert s.row("classifier").output_shape == (24, 24, 4)
    with pytest.raises(ValueError, match="too small|input"):
        models.unet(widths=(4, 8, 8, 16), input_shape=(4, 4, 1))


# --------------------------------------------------------------------------- targets
def test_padded_and_listed_targets_agree_and_bad_ones_get_one_line():
    listed = [{"boxes": [[0, 0, 4, 4], [2, 2, 8, 9]], "classes": [1, 3]}, {"boxes": np.zeros((0, 4)), "classes": []}]
    padded = {"boxes": np.array([[[0, 0, 4, 4], [2, 2, 8, 9]], [[0, 0, 0, 0], [0, 0, 0, 0]]]),
              "classes": np.array([[1, 3], [-1, -1]])}
    counted = dict(padded, classes=np.array([[1, 3], [0, 0]]), count=np.array([2, 0]))
    for form in (padded, counted):
        got = box_targets(form)
        assert len(got) == 2 and len(got[1]["boxes"]) == 0
        assert np.array_equal(got[0]["boxes"], np.array(listed[0]["boxes"], float))
        assert got[0]["classes"].tolist() == [1, 3]
    with pytest.raises(ValueError, match=r"targets\[0\] has 2 boxes but 1 classes"):
        box_targets([{"boxes": [[0, 0, 1, 1], [0, 0, 2, 2]], "classes": [1]}])
    with pytest.raises(ValueError, match="batch has 3 images but 2 targets"):
        box_targets(listed, 3)
    with pytest.raises(ValueError, match=r"class 12 of image 0 is outside \[0, 10\)"):
        CenterNetDetection(10).encode([{"boxes": [[0, 0, 8, 8]], "classes": [12]}], (1, 4, 4))


def test_centernet_targets_decode_back_to_the_boxes():
    task = CenterNetDetection(num_classes=3, stride=4)
    truth = [{"boxes": [[3.0, 5.0, 19.0, 27.0], [30.5, 2.0, 45.0, 13.0]], "classes": [2, 0]},
             {"boxes": [[40.0, 40.0, 60.0, 62.0]], "classes": [1]}]
    t = task.encode(truth, (2, 16, 16))
    assert t["mask"].sum() == 3 and t["heatmap"].max() == 1.0 and (t["heatmap"] == 1.0).sum() == 3
    # the centre (11, 16) of the first box lies in cell (x 2, y 4) at offset (0.75, 0)
    assert t["heatmap"][0, 4, 2, 2] == 1.0 and np.allclose(t["offset"][0, 4, 2], [0.75, 0.0])
    assert np.allclose(t["size"][0, 4, 2], [4.0, 5.5])
    # outputs that say exactly the targets (logits of the heatmap) decode to the boxes themselves
    heat = np.clip(t["heatmap"], 1e-6, 1 - 1e-6)
    outputs = np.concatenate([np.log(heat / (1 - heat)), t["size"], t["offset"]], axis=-1)
    for pred, gt in zip(task.decode(outputs, score_threshold=0.5), truth):
        order = np.argsort(pred["classes"])
        gt_order = np.argsort(gt["classes"])
        assert np.allclose(pred["boxes"][order], np.array(gt["boxes"])[gt_order])
        assert np.allclose(pred["scores"], 1 - 1e-6)


def test_centernet_loss_gradients_match_finite_differences_and_pytorch():
    task = CenterNetDetection(num_classes=2, stride=4)
    truth = [{"boxes": [[2.0, 3.0, 14.0, 12.0]], "classes": [1]}, {"boxes": [[1.0, 1.0, 9.0, 15.0]], "classes": [0]}]
    rng = np.random.default_rng(0)
    out = rng.standard_normal((2, 4, 4, 6))
    assert st.gradcheck(lambda o: task.loss(o, truth), [out])
    torch = pytest.importorskip("torch")
    t = task.encode(truth, (2, 4, 4))
    o = torch.tensor(out, requires_grad=True)
    p = torch.sigmoid(o[..., :2]).clamp(1e-12, 1 - 1e-12)
    y = torch.tensor(t["heatmap"])
    pos = (y == 1).double()
    focal = -(((1 - p) ** 2 * torch.log(p) * pos).sum() + ((1 - y) ** 4 * p ** 2 * torch.log(1 - p) * (1 - pos)).sum())
    m = torch.tensor(t["mask"])
    l1 = 0.5 * ((o[..., 2:4] - torch.tensor(t["size"])).abs() * m).sum() + \
        ((o[..., 4:] - torch.tensor(t["offset"])).abs() * m).sum()
    ref = (focal + l1) / 2
    ref.backward()
    x = st.Tensor(out.copy(), requires_grad=True)
    loss = task.loss(x, truth)
    loss.backward()
    assert np.isclose(float(loss.data), float(ref.detach()), rtol=1e-10)
    assert np.allclose(x.grad, o.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_localization_encodes_normalised_centres_and_decodes_pixels():
    task = Localization(image_size=(40, 20))
    classes, boxes = task.encode([{"boxes": [[2, 4, 12, 24]], "classes": [7]}])
    assert classes.tolist() == [7] and np.allclose(boxes, [[7 / 20, 14 / 40, 10 / 20, 20 / 40]])
    logits = np.zeros((1, 10))
    logits[0, 7] = 5.0
    pred = task.decode(np.concatenate([logits, boxes], axis=1))[0]
    assert pred["classes"].tolist() == [7] and np.allclose(pred["boxes"], [[2, 4, 12, 24]])
    assert task.decode((logits, boxes))[0]["scores"][0] > 0.9
    with pytest.raises(ValueError, match="image 0 of the batch has none"):
        task.encode([{"boxes": np.zeros((0, 4)), "classes": []}])


def test_segmentation_loss_is_the_ignoring_cross_entropy_plus_dice():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    masks = rng.integers(0, 3, (2, 5, 5))
    masks[0, 0] = 255
    ce = st.functional.cross_entropy(logits, masks, ignore_index=255)
    dice = st.functional.dice_loss(logits, masks, ignore_index=255)
    assert np.isclose(float(Segmentation()(st.Tensor(logits), masks).data), float(ce.data))
    both = Segmentation(dice_weight=0.5)(st.Tensor(logits), masks)
    assert np.isclose(float(both.data), float(ce.data) + 0.5 * float(dice.data), rtol=1e-6)
    assert np.array_equal(Segmentation().decode(logits), logits.argmax(-1))
    with pytest.raises(ValueError, match=r"masks must be \(n, h, w\) integer"):
        Segmentation()(st.Tensor(logits), masks.astype(np.float32))


# --------------------------------------------------------------------------- learning
def _losses(history):
    return history.history["loss"]


def test_localizer_learns_where_the_digit_is():
    x, t, _ = canvases(96, size=32, scale=2, seed=0)
    model = models.localizer(widths=(8, 16, 16), hidden=64, input_shape=(32, 32, 1), rng=0)
    task = Localization(image_size=(32, 32))
    history = st.training.fit(model, Batches(x, t, 16), epochs=12, loss=task, verbose=0,
                              optimizer=st.optim.Adam(model.parameters(), lr=3e-3))
    assert set(history.history) >= {"loss"} and "acc" not in history.history
    assert _losses(history)[-1] < 0.5 * _losses(history)[0]
    model.eval()
    with st.no_grad():
        preds = task.decode(model(st.Tensor(x)))
    ious = [box_iou(p["boxes"], g["boxes"])[0, 0] for p, g in zip(preds, t)]
    assert np.mean(ious) > 0.5


def test_centernet_learns_to_find_digits():
    x, t, _ = canvases(64, size=32, count=(1, 2), scale=2, seed=1)
    model = models.centernet(num_classes=10, widths=(8, 16, 16), head=16, input_shape=(32, 32, 1), rng=0)
    task = CenterNetDetection(num_classes=10)
    history = st.training.fit(model, Batches(x, t, 16), epochs=15, loss=task, verbose=0,
                              optimizer=st.optim.Adam(model.parameters(), lr=5e-3))
    assert _losses(history)[-1] < 0.5 * _losses(history)[0]
    model.eval()
    with st.no_grad():
        preds = task.decode(model(st.Tensor(x)))
    # the best box of each canvas overlaps one of its digits (the class may still be wrong)
    best = [box_iou(p["boxes"][:1], g["boxes"]).max() if len(p["boxes"]) else 0.0 for p, g in zip(preds, t)]
    assert np.median(best) > 0.5
    assert st.training.evaluate(model, Batches(x, t, 32), loss=task)["loss"] < _losses(history)[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unet", "fcn"])
def test_segmentation_models_learn_the_strokes(name):
    x, _, masks = canvases(96, size=32, count=(1, 2), scale=2, seed=2)
    model = models.get(name, num_classes=11, widths=(8, 16, 16), input_shape=(32, 32, 1), rng=0)
    task = Segmentation()
    epochs, lr = (25, 5e-3) if name == "unet" else (30, 1e-2)
    history = st.training.fit(model, Batches(x, masks, 16), epochs=epochs, loss=task, verbose=0,
                              optimizer=st.optim.Adam(model.parameters(), lr=lr))
    assert _losses(history)[-1] < 0.5 * _losses(history)[0]
    model.eval()
    with st.no_grad():
        pred = task.decode(model(st.Tensor(x)))
    stroke = masks > 0
    # the strokes are found: the all-background prediction finds none of them
    found = np.mean(pred[stroke] > 0)
    assert found > 0.7, found
    # and most of them with the right digit: pixel accuracy above the all-background prediction's
    assert np.mean(pred == masks) > np.mean(masks == 0) + 0.025


def test_fit_with_a_task_takes_padded_targets_and_validates():
    x, t, _ = canvases(32, size=32, count=(1, 2), scale=2, seed=3)
    padded = {"boxes": np.zeros((32, 2, 4)), "classes": np.full((32, 2), -1)}
    for i, g in enumerate(t):
        padded["boxes"][i, :len(g["boxes"])], padded["classes"][i, :len(g["classes"])] = g["boxes"], g["classes"]

    class Padded:
        def __iter__(self):
            for b in range(0, 32, 16):
                yield x[b:b + 16], {k: v[b:b + 16] for k, v in padded.items()}

    model = models.centernet(widths=(4, 8, 8), head=8, input_shape=(32, 32, 1), rng=0)
    task = CenterNetDetection(10)
    history = st.training.fit(model, Padded(), val=Padded(), epochs=2, loss=task, verbose=0)
    assert sorted(k for k in history.history if "loss" in k) == ["loss", "val_loss"]
    same = st.training.evaluate(model, [(x, t)], loss=task)
    assert np.isclose(same["loss"], st.training.evaluate(model, Padded(), loss=task)["loss"], rtol=1e-5)
    assert tasks.Task in type(task).__mro__
