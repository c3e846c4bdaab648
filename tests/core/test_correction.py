import numpy as np
import pytest

from adele.core.correction import (
    change_precision,
    class_change_counts,
    classes_present,
    correct_labels,
)
from adele.core.store import PredictionStore

# 4 classes; only class 1 is flagged.
FLAGGED = np.array([False, True, False, False])


def one_pixel(label, pred, conf, context=(1, 2, 3), flagged=FLAGGED, **kw):
    """Correct the first pixel of a 1 x 4 image whose other pixels hold `context`."""
    labels = np.array([[label, *context]], dtype=np.uint8)
    preds = labels.copy()
    preds[0, 0] = pred
    confs = np.zeros(labels.shape, dtype=np.asarray(conf).dtype)
    confs[0, 0] = conf
    res = correct_labels(labels, preds, confs, flagged, **kw)
    assert res.labels.shape == labels.shape and res.labels.dtype == np.uint8
    assert res.changed[0, 1:].sum() == 0
    return int(res.labels[0, 0]), bool(res.changed[0, 0])


# ---------------------------------------------------------------- each condition of the rule
def test_flagged_label_becomes_confident_background():
    assert one_pixel(label=1, pred=0, conf=np.float32(0.9)) == (0, True)


def test_background_becomes_confident_flagged_class():
    assert one_pixel(label=0, pred=1, conf=np.float32(0.9)) == (1, True)


def test_unflagged_label_is_untouched():
    assert one_pixel(label=2, pred=0, conf=np.float32(0.99)) == (2, False)
    assert one_pixel(label=2, pred=1, conf=np.float32(0.99)) == (2, False)


def test_unflagged_prediction_is_not_written():
    assert one_pixel(label=0, pred=2, conf=np.float32(0.99)) == (0, False)
    assert one_pixel(label=1, pred=3, conf=np.float32(0.99)) == (1, False)


def test_flagged_class_absent_from_image_is_not_invented():
    assert one_pixel(label=0, pred=1, conf=np.float32(0.99), context=(0, 2, 3)) == (0, False)
    # explicit `allowed` overrides the presence computed from labels
    allowed = np.array([[True, False, True, True]])
    assert one_pixel(label=0, pred=1, conf=np.float32(0.99), allowed=allowed) == (0, False)
    allowed = np.array([[True, True, False, False]])
    assert one_pixel(label=0, pred=1, conf=np.float32(0.99), context=(0, 2, 3),
                     allowed=allowed) == (1, True)


def test_flagged_to_other_flagged_class():
    flagged = np.array([False, True, True, False])
    assert one_pixel(label=1, pred=2, conf=np.float32(0.9), flagged=flagged) == (2, True)


def test_ignore_pixels_untouched_unless_asked():
    assert one_pixel(label=255, pred=0, conf=np.float32(0.99)) == (255, False)
    assert one_pixel(label=255, pred=1, conf=np.float32(0.99), correct_ignore=True) == (1, True)
    assert one_pixel(label=7, pred=0, conf=np.float32(0.99), ignore_index=7,
                     correct_ignore=True) == (0, True)


def test_same_label_is_not_counted_as_changed():
    assert one_pixel(label=1, pred=1, conf=np.float32(0.99)) == (1, False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_tau_boundaries_are_strict(dtype):
    tau = 0.7
    at, above, below = dtype(tau), np.nextafter(dtype(tau), dtype(1)), dtype(0.69)
    assert one_pixel(1, 0, at, tau_bg=tau) == (1, False)
    assert one_pixel(1, 0, above, tau_bg=tau) == (0, True)
    assert one_pixel(0, 1, at, tau_fg=tau) == (0, False)
    assert one_pixel(0, 1, above, tau_fg=tau) == (1, True)
    assert one_pixel(0, 1, below, tau_fg=tau) == (0, False)


def test_background_and_foreground_thresholds_are_separate():
    conf = np.float32(0.75)
    assert one_pixel(1, 0, conf, tau_bg=0.8, tau_fg=0.7) == (1, False)  # bg needs > 0.8
    assert one_pixel(0, 1, conf, tau_bg=0.8, tau_fg=0.7) == (1, True)   # fg needs > 0.7
    assert one_pixel(0, 1, conf, tau_bg=0.7, tau_fg=0.8) == (0, False)


@pytest.mark.parametrize("tau", [0.5, 0.7, 0.8, 0.95])
def test_quantized_boundary(tau):
    k = int(np.floor(tau * 255))
    assert one_pixel(0, 1, np.uint8(k), tau_fg=tau) == (0, False)
    assert one_pixel(0, 1, np.uint8(k + 1), tau_fg=tau) == (1, True)
    assert one_pixel(1, 0, np.uint8(k), tau_bg=tau) == (1, False)
    assert one_pixel(1, 0, np.uint8(k + 1), tau_bg=tau) == (0, True)


@pytest.mark.parametrize("tau", [0.7, 0.8])
def test_quantized_decisions_match_float_away_from_tau(tau):
    rng = np.random.default_rng(0)
    N, H, W, C = 4, 32, 32, 5
    labels = rng.integers(0, C, (N, H, W), dtype=np.uint8)
    labels[rng.random(labels.shape) < 0.05] = 255
    pred = rng.integers(0, C, (N, H, W), dtype=np.uint8)
    p = rng.uniform(0.5, 1.0, (N, H, W))
    near = rng.random(p.shape) < 0.5  # half the pixels within 3/255 of tau
    p[near] = tau + rng.uniform(-3 / 255, 3 / 255, near.sum())
    p = p.astype(np.float32)
    flagged = np.array([False, True, False, True, True])
    kw = dict(flagged=flagged, tau_bg=tau, tau_fg=tau)
    by_float = correct_labels(labels, pred, p, **kw)
    by_quant = correct_labels(labels, pred, PredictionStore.quantize(p), **kw)
    differ = by_float.changed != by_quant.changed
    assert np.all(np.abs(p[differ].astype(np.float64) - tau) <= 1 / 255)
    assert by_float.changed.sum() > 100  # the rule actually fired
    np.testing.assert_array_equal(by_float.labels[~differ], by_quant.labels[~differ])


def test_batch_equals_per_image_and_inputs_are_not_modified():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, (3, 8, 9), dtype=np.uint8)
    pred = rng.integers(0, 4, (3, 8, 9), dtype=np.uint8)
    conf = rng.random((3, 8, 9)).astype(np.float32)
    before = labels.copy()
    batch = correct_labels(labels, pred, conf, FLAGGED)
    np.testing.assert_array_equal(labels, before)
    for n in range(3):
        single = correct_labels(labels[n], pred[n], conf[n], FLAGGED)
        np.testing.assert_array_equal(single.labels, batch.labels[n])
        np.testing.assert_array_equal(single.changed, batch.changed[n])
    np.testing.assert_array_equal(batch.changed, batch.labels != labels)


def test_integer_labels_are_accepted():
    labels = np.array([[1, 1, 0]], dtype=np.int64)
    res = correct_labels(labels, np.zeros((1, 3), np.int64), np.full((1, 3), 0.9, np.float32), FLAGGED)
    assert res.labels.tolist() == [[0, 0, 0]]


@pytest.mark.parametrize("tau", [0.4, 1.0])
def test_invalid_tau_raises(tau):
    z = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError, match="tau_fg"):
        correct_labels(z, z, z, FLAGGED, tau_fg=tau)


def test_shape_mismatch_raises():
    z = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        correct_labels(z, np.zeros((2, 3), np.uint8), z, FLAGGED)
    with pytest.raises(TypeError, match="uint8"):
        correct_labels(z.astype(np.float32), z, z, FLAGGED)


def test_classes_present():
    labels = np.array([[[0, 2], [255, 2]], [[1, 1], [1, 1]]], dtype=np.uint8)
    assert classes_present(labels, 4).tolist() == [[True, False, True, False], [True, True, False, False]]


# ---------------------------------------------------------------- statistics
def test_class_change_counts_and_precision():
    old = np.array([[0, 0, 1, 1, 2, 0]], np.uint8)
    new = np.array([[1, 1, 0, 1, 2, 0]], np.uint8)
    clean = np.array([[1, 0, 0, 1, 2, 255]], np.uint8)
    assert class_change_counts(old, new, 4).tolist() == [1, 2, 0, 0]
    prec = change_precision(old, new, clean, 4)
    assert prec.changed.tolist() == [1, 2, 0, 0] and prec.correct.tolist() == [1, 1, 0, 0]
    np.testing.assert_allclose(prec.per_class[:2], [1.0, 0.5])
    assert np.isnan(prec.per_class[2]) and np.isnan(prec.per_class[3])
    assert prec.overall == pytest.approx(2 / 3)


def test_precision_is_nan_when_nothing_changed():
    x = np.zeros((2, 2), np.uint8)
    prec = change_precision(x, x, x, 3)
    assert np.isnan(prec.overall) and np.all(np.isnan(prec.per_class))


# ---------------------------------------------------------------- the official VOC rule
from adele.core.correction import correct_labels_voc, shrink_guard  # noqa: E402


def _voc(label_row, pred_row, conf=0.9, flagged=FLAGGED, **kw):
    labels = np.array([label_row], dtype=np.uint8)
    pred = np.array([pred_row], dtype=np.uint8)
    res = correct_labels_voc(labels, pred, np.full(labels.shape, conf), flagged, guard=None, **kw)
    return list(res.labels[0])


def test_voc_any_label_may_change_to_background_or_a_flagged_class():
    # label 2 (not flagged) and ignore (255) pixels change too, unlike the SegTHOR rule
    assert _voc([2, 255, 1, 0], [1, 1, 0, 1]) == [1, 1, 0, 1]
    assert _voc([2, 1, 0, 0], [0, 0, 1, 1]) == [0, 0, 1, 1]
    # only background and flagged classes are written
    assert _voc([1, 1, 0, 0], [2, 3, 2, 1]) == [1, 1, 0, 1]
    # one threshold, strict
    assert _voc([1, 0, 0, 0], [0, 1, 1, 1], conf=0.8) == [1, 0, 0, 0]


def test_voc_class_constraint_only_where_the_label_has_foreground():
    flagged = np.array([False, True, True, False])
    # image with class 2 only: predicted 1 is not among its classes, so it is not written
    assert _voc([2, 2, 0, 0], [2, 1, 1, 0], flagged=flagged) == [2, 2, 0, 0]
    # background-only image (background and ignore): no constraint, any flagged class may appear
    assert _voc([0, 0, 255, 0], [1, 2, 2, 0], flagged=flagged) == [1, 2, 2, 0]
    # an image without any flagged class (but with foreground) is left as it is
    assert _voc([3, 3, 0, 0], [0, 0, 0, 3]) == [3, 3, 0, 0]


def test_voc_shrink_guard_keeps_an_image_that_would_lose_its_foreground():
    labels = np.zeros((1, 10, 10), np.uint8)
    labels[0, :2, :4] = 1  # 8 foreground pixels
    pred = np.zeros_like(labels)
    pred[0, 0, :3] = 1  # keeps 3 of 8 (< 50%) and leaves 97% background
    res = correct_labels_voc(labels, pred, np.full(labels.shape, 0.95), FLAGGED)
    assert res.held.tolist() == [True] and not res.changed.any() and np.array_equal(res.labels, labels)
    res = correct_labels_voc(labels, pred, np.full(labels.shape, 0.95), FLAGGED, guard=None)
    assert res.held.tolist() == [False] and (res.labels == 1).sum() == 3
    assert shrink_guard(labels[0], res.labels[0]) and not shrink_guard(labels[0], labels[0])
    # keeps 4 of 8 (= 50%): not held
    pred[0, 1, 0] = 1
    assert not correct_labels_voc(labels, pred, np.full(labels.shape, 0.95), FLAGGED).held[0]


def test_voc_quantized_confidence_matches_float():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (3, 8, 9)).astype(np.uint8)
    pred = rng.integers(0, 4, (3, 8, 9)).astype(np.uint8)
    p = rng.uniform(0.5, 1.0, (3, 8, 9))
    p = np.where(np.abs(p - 0.8) < 0.01, 0.9, p)
    a = correct_labels_voc(labels, pred, p, FLAGGED).labels
    b = correct_labels_voc(labels, pred, np.round(p * 255).astype(np.uint8), FLAGGED).labels
    assert np.array_equal(a, b)


# ---------------------------------------------------------------- the area guard
from adele.core.correction import area_guard  # noqa: E402


def _row(*v):
    return np.array([v], np.uint8)


def test_area_guard_rolls_back_a_class_that_runs_away_and_only_that_class():
    base = [_row(1, 1, 1, 1, 2, 2, 0, 0), _row(1, 1, 0, 0, 2, 2, 0, 0)]
    new = [_row(1, 0, 0, 0, 2, 2, 2, 0), _row(0, 0, 0, 0, 2, 2, 0, 2)]
    ref = base  # class 1: 6 px in the noisy labels, 1 after the round (0.17 x); class 2: 4 -> 6 (1.5 x)
    out, fired, erased = area_guard(base, new, ref, [1, 2], max_change=0.6)
    assert fired == {1: pytest.approx(1 / 6)} and erased == {}
    assert out[0].tolist() == [[1, 1, 1, 1, 2, 2, 2, 0]] and out[1].tolist() == [[1, 1, 0, 0, 2, 2, 0, 2]]
    out, fired, _ = area_guard(base, new, ref, [1, 2], max_change=0.4)
    assert set(fired) == {1, 2} and all(np.array_equal(a, b) for a, b in zip(out, base))
    out, fired, erased = area_guard(base, new, ref, [2], max_change=0.6)  # only the round's classes are checked
    assert fired == {} and erased == {} and out is new
    with pytest.raises(ValueError, match="max_change"):
        area_guard(base, new, ref, [1], max_change=0)


def test_area_guard_measures_against_the_noisy_labels_not_the_rounds_start():
    """An earlier round shrank class 1 to 2 px (of 8 noisy); this round brings it back to 7: toward its reference, kept.
    Measured against the round's starting labels (2 px) that would be a 3.5x growth and be rolled back."""
    noisy = [_row(1, 1, 1, 1, 1, 1, 1, 1, 0, 0)]
    base = [_row(1, 1, 0, 0, 0, 0, 0, 0, 0, 0)]
    new = [_row(1, 1, 1, 1, 1, 1, 1, 0, 0, 0)]
    out, fired, erased = area_guard(base, new, noisy, [1], max_change=0.25)
    assert fired == {} and erased == {} and out is new


def test_area_guard_fires_only_when_the_round_moves_a_class_away():
    noisy = [_row(1, 1, 1, 1, 1, 1, 1, 1, 0, 0)]
    base = [_row(1, 1, 1, 1, 0, 0, 0, 0, 0, 0)]  # 0.5x already, from an earlier round
    out, fired, _ = area_guard(base, [base[0].copy()], noisy, [1], max_change=0.25)  # a round that changed nothing
    assert fired == {}
    out, fired, _ = area_guard(base, [_row(1, 1, 1, 1, 1, 0, 0, 0, 0, 0)], noisy, [1], max_change=0.25)  # 0.5 -> 0.625: back
    assert fired == {}
    out, fired, _ = area_guard(base, [_row(1, 1, 1, 0, 0, 0, 0, 0, 0, 0)], noisy, [1], max_change=0.25)  # 0.5 -> 0.375: away
    assert fired == {1: pytest.approx(3 / 8)} and out[0].tolist() == base[0].tolist()


def test_area_guard_rechecks_the_other_classes_after_a_rollback():
    """Class 2 grows into class 1 (fine alone, 1.2x) and class 1 runs away to 0 elsewhere: rolling class 1 back also
    returns the pixels class 2 took from it, so class 2 is re-checked (and here left as rolled back, within its band)."""
    noisy = [_row(1, 1, 1, 1, 2, 2, 2, 2, 2, 0)]
    base = [noisy[0].copy()]
    new = [_row(0, 0, 0, 2, 2, 2, 2, 2, 2, 0)]  # 1: 4 -> 0 ; 2: 5 -> 6 (1.2x)
    out, fired, _ = area_guard(base, new, noisy, [1, 2], max_change=0.25)
    assert fired == {1: 0.0} and out[0].tolist() == noisy[0].tolist()
    # a rollback that pushes another class out of its band: 2 moved to 3 and took 1's pixel; rolling back 1 leaves 2 short
    noisy = [_row(1, 1, 1, 1, 2, 2, 2, 2, 3, 3)]
    new = [_row(2, 2, 0, 0, 3, 3, 2, 2, 3, 3)]  # 1: 4 -> 0 (fires); 2: 4 -> 4 (took two of 1's, gave two to 3: 1.0x)
    out, fired, _ = area_guard([noisy[0].copy()], new, noisy, [1, 2], max_change=0.25)
    # after 1's rollback, 2 holds 2 px (0.5x, out of band and farther than before): rolled back in turn
    assert set(fired) == {1, 2} and out[0].tolist() == noisy[0].tolist()


def test_area_guard_catches_erasure_in_one_image_that_growth_in_another_hides():
    noisy = [_row(1, 1, 1, 1, 0, 0, 0, 0), _row(1, 1, 1, 1, 0, 0, 0, 0)]
    base = [x.copy() for x in noisy]
    new = [_row(0, 0, 0, 0, 0, 0, 0, 0), _row(1, 1, 1, 1, 1, 1, 1, 1)]  # total 8 -> 8 (1.0x): image 0 erased, image 1 doubled
    out, fired, erased = area_guard(base, new, noisy, [1], max_change=0.25)
    assert fired == {} and erased == {1: 1}
    assert out[0].tolist() == noisy[0].tolist() and out[1].tolist() == new[1].tolist()


def test_area_guard_reference_is_the_given_area_not_the_rounds_start():
    """An earlier round shrank class 1 from 10 px (the noisy labels) to 8; this one leaves it at 6: 0.6 x the
    reference (fires at 0.3) though only 0.75 x the round's start. Class 2: 4 -> 3 before, back to 4 now: 1.0 x."""
    noisy = [np.array([[1] * 10 + [2] * 4 + [0] * 2], np.uint8)]
    base = [np.array([[1] * 8 + [2] * 3 + [0] * 5], np.uint8)]
    new = [np.array([[1] * 6 + [0] * 2 + [2] * 4 + [0] * 4], np.uint8)]
    out, fired, _ = area_guard(base, new, noisy, [1, 2], max_change=0.3)
    assert fired == {1: pytest.approx(0.6)}
    assert out[0].tolist() == [[1] * 8 + [2] * 4 + [0] * 4]  # class 1 back to its 8 px; class 2's change kept



class _OnDisk:
    """A writable sequence like labels on disk: each read a fresh copy, writes stored."""

    def __init__(self, arrays):
        self.arrays = [a.copy() for a in arrays]
        self.reads = 0

    def __len__(self):
        return len(self.arrays)

    def __getitem__(self, i):
        self.reads += 1
        return self.arrays[i].copy()

    def __setitem__(self, i, value):
        self.arrays[i] = np.asarray(value).copy()

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def test_area_guard_on_labels_on_disk_equals_lists_and_leaves_list_input_alone():
    """The same rollbacks (a class fired everywhere, erasure in one image) whether the round's labels are a list or a
    sequence read image by image and rewritten in place; a list given is not modified."""
    rng = np.random.default_rng(0)
    noisy = [rng.integers(0, 3, (6, 8)).astype(np.uint8) for _ in range(5)]
    base = [x.copy() for x in noisy]
    new = [np.where((rng.random(x.shape) < 0.6) & (x == 0), 1, x).astype(np.uint8) for x in base]  # class 1 grows over background
    new[3] = np.where(new[3] == 2, 0, new[3]).astype(np.uint8)  # class 2 erased in image 3
    kept = [x.copy() for x in new]
    out, fired, erased = area_guard(base, new, noisy, [1, 2], max_change=0.25)
    assert 1 in fired and erased == {2: 1}
    assert all((a == b).all() for a, b in zip(new, kept))  # the list given is untouched
    disk = _OnDisk(new)
    out_d, fired_d, erased_d = area_guard(_OnDisk(base), disk, _OnDisk(noisy), [1, 2], max_change=0.25)
    assert out_d is disk and fired_d == fired and erased_d == erased
    assert all((a == b).all() for a, b in zip(out, out_d.arrays))

# ---------------------------------------------------------------- what the network predicts, per class
from adele.core.correction import prediction_areas  # noqa: E402


def test_prediction_areas_count_under_segmentation_and_confident_background():
    labels = np.array([[1, 1, 1, 1, 2, 2, 0, 255]], np.uint8)
    pred = np.array([[1, 1, 0, 0, 2, 2, 2, 0]], np.uint8)
    conf = np.array([[0.9, 0.9, 0.95, 0.6, 0.9, 0.9, 0.8, 0.99]])
    a = prediction_areas(labels, pred, conf, 3, tau_bg=0.7)
    assert a.labelled.tolist() == [1, 4, 2] and a.predicted.tolist() == [2, 2, 3]  # the ignore pixel is left out
    assert a.to_background.tolist() == [0, 1, 0]  # one of class 1's pixels is background above 0.7, one below
    assert a.ratio(a.predicted)[1] == 0.5 and a.ratio(a.to_background)[1] == 0.25
    q = prediction_areas(labels, pred, np.round(conf * 255).astype(np.uint8), 3, tau_bg=0.7)  # quantized = float
    assert np.array_equal(q.to_background, a.to_background) and np.array_equal(q.predicted, a.predicted)
    both = a + q
    assert both.labelled.tolist() == [2, 8, 4]
    assert np.isnan(prediction_areas(labels, pred, conf, 4).ratio(np.ones(4))[3])  # no labelled pixel: NaN


def test_class_thresholds_ask_each_class_for_its_own_most_confident_pixels():
    """CBST-style per-class bars: the confidence that the top `share` of each class's predicted pixels reaches."""
    from adele.core import class_thresholds, confidence_histogram

    pred = np.array([[0, 0, 0, 0, 1, 1, 1, 1]], dtype=np.uint8)
    conf = np.array([[255, 255, 255, 200, 230, 220, 210, 180]], dtype=np.uint8)
    hist = confidence_histogram(pred, conf, 3)
    assert hist.shape == (3, 256) and hist[0, 255] == 3 and hist[1].sum() == 4 and hist[2].sum() == 0
    # float confidences land in the same bins as the store's rounding
    assert (confidence_histogram(pred, conf / 255.0, 3) == hist).all()
    tau = class_thresholds(hist, 0.5, 0.7, 0.7)
    # background: half of its 4 pixels are at 255 -> only q >= 255 passes; class 1: the top half is >= 220;
    # class 2 is never predicted: keeps tau
    assert np.floor(tau[0] * 255) == 254 and np.floor(tau[1] * 255) == 219 and tau[2] == 0.7
    # share 1: each class's lowest confidence, unless tau is higher (class 1's lowest, 180, is below 0.75)
    assert np.allclose(class_thresholds(hist, 1.0, 0.7, 0.75), [199.5 / 255, 0.75, 0.75])
    # in the rule: class 1's pixels at 210 (above tau 0.7 = 178) are not written, those at 220+ are
    labels = np.zeros((1, 8), dtype=np.uint8)
    labels[0, 3] = 1  # a class-1 pixel the network calls background at q 200: below background's bar now
    flagged = np.array([False, True, True])
    allowed = np.array([[True, True, False]])
    res = correct_labels(labels, pred, conf, flagged, 0.7, 0.7, allowed, tau_class=tau)
    assert res.labels.tolist() == [[0, 0, 0, 1, 1, 1, 0, 0]]
    plain = correct_labels(labels, pred, conf, flagged, 0.7, 0.7, allowed)
    assert plain.labels.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1]]
    with pytest.raises(ValueError, match="one threshold per class"):
        correct_labels(labels, pred, conf, flagged, tau_class=tau[:2])
    with pytest.raises(ValueError, match="share"):
        class_thresholds(hist, 0.0)
    # the official VOC rule takes the same bars in place of its one tau
    voc = correct_labels_voc(labels, pred, conf, flagged, 0.7, tau_class=tau, guard=None)
    assert voc.labels.tolist() == [[0, 0, 0, 1, 1, 1, 0, 0]]
    assert correct_labels_voc(labels, pred, conf, flagged, 0.7, guard=None).labels.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1]]
