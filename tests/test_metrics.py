"""Metric definitions on hand-built confusion matrices (rows = ground truth, columns = prediction)."""
import math

import numpy as np
import pytest
import torch

from adele.metrics import (
    SegMetrics,
    confusion_matrix,
    foreground_mean,
    mean_dice,
    present_in_truth,
    scores_from_confusion,
)

NAMES = ["bg", "a", "b", "c"]


def test_confusion_matrix_counts_rows_truth_cols_prediction_and_skips_ignore():
    target = np.array([[0, 1, 1, 255], [2, 2, 0, 1]])
    pred = np.array([[0, 1, 2, 3], [2, 0, 0, 1]])
    cm = confusion_matrix(pred, target, 4)
    expected = np.zeros((4, 4), dtype=np.int64)
    for t, p in [(0, 0), (1, 1), (1, 2), (2, 2), (2, 0), (0, 0), (1, 1)]:
        expected[t, p] += 1
    np.testing.assert_array_equal(cm, expected)
    t = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 4)
    np.testing.assert_array_equal(t.numpy(), expected)


def cm_from(rows):
    return np.array(rows, dtype=np.int64)


def test_background_is_never_in_the_mean():
    cm = cm_from([[100, 0, 0, 0], [0, 10, 0, 0], [0, 0, 0, 10], [0, 0, 0, 10]])
    dice = scores_from_confusion(cm)["dice"]
    assert dice[0] == 1.0 and dice[1] == 1.0 and dice[2] == 0.0
    # mean over a, b, c = (1 + 0 + 2*10/(20+10)) / 3; background's perfect 1.0 is not in it
    assert foreground_mean(dice, present_in_truth(cm)) == pytest.approx((1 + 0 + 2 / 3) / 3)


def test_absent_in_both_is_nan_and_excluded():
    # (a) class c absent from the label and never predicted
    cm = cm_from([[50, 0, 0, 0], [0, 8, 2, 0], [0, 2, 8, 0], [0, 0, 0, 0]])
    dice = scores_from_confusion(cm)["dice"]
    assert math.isnan(dice[3])
    assert foreground_mean(dice, present_in_truth(cm)) == pytest.approx(0.8)


def test_absent_in_truth_but_predicted_gives_the_same_mean():
    # (b) class c absent from the label, predicted on 3 background pixels: same mean as (a)
    cm = cm_from([[47, 0, 0, 3], [0, 8, 2, 0], [0, 2, 8, 0], [0, 0, 0, 0]])
    dice = scores_from_confusion(cm)["dice"]
    assert dice[3] == 0.0  # the raw score is 0 ...
    assert foreground_mean(dice, present_in_truth(cm)) == pytest.approx(0.8)  # ... but never averaged in


def test_present_but_never_predicted_counts_as_zero():
    # (c) class c present in the label (5 pixels), never predicted: Dice 0, counted
    cm = cm_from([[50, 0, 0, 0], [0, 8, 2, 0], [0, 2, 8, 0], [5, 0, 0, 0]])
    dice = scores_from_confusion(cm)["dice"]
    assert dice[3] == 0.0
    assert foreground_mean(dice, present_in_truth(cm)) == pytest.approx((0.8 + 0.8 + 0.0) / 3)


def _seg(pairs):
    """SegMetrics from a list of (pred, target) (H, W) arrays."""
    m = SegMetrics(4)
    for pred, target in pairs:
        m.update(torch.as_tensor(pred)[None], torch.as_tensor(target)[None])
    return m.compute(NAMES)


def test_segmetrics_dataset_level_reports_absent_classes_separately():
    target = np.array([[0, 0, 1, 1], [0, 0, 2, 2]])
    clean_pred = target.copy()
    stray = target.copy()
    stray[0, 0] = 3  # a stray pixel of class c, which the ground truth does not contain
    a, b = _seg([(clean_pred, target)]), _seg([(stray, target)])
    assert a["mean_dice"] == b["mean_dice"] == 1.0
    assert a["mean_classes"] == b["mean_classes"] == ["a", "b"]
    assert a["absent_classes"] == {"c": 0} and b["absent_classes"] == {"c": 1}
    assert b["dice"]["c"] is None and b["dice"]["bg"] is not None


def test_dataset_level_is_one_confusion_matrix_not_a_mean_of_images():
    # image 1: class a 1 pixel, wrong; image 2: class a 9 pixels, right
    t1, p1 = np.array([[1, 0]]), np.array([[0, 0]])
    t2, p2 = np.array([[1] * 9 + [0]]), np.array([[1] * 9 + [0]])
    out = SegMetrics(2)
    for p, t in ((p1, np.pad(t1, ((0, 0), (0, 8)))), (p2, t2)):
        out.update(torch.as_tensor(np.pad(p, ((0, 0), (0, 10 - p.shape[1]))))[None], torch.as_tensor(t)[None])
    res = out.compute(["bg", "a"])
    assert res["mean_dice"] == pytest.approx(2 * 9 / (2 * 9 + 1))  # pooled: TP 9, FN 1
    assert res["per_image_mean_dice"] == pytest.approx((0.0 + 1.0) / 2)  # per image, then averaged


def test_per_image_mean_excludes_prediction_only_classes():
    target = np.array([[0, 0, 1, 1]])
    pred = np.array([[2, 0, 1, 1]])  # class b predicted, not in this image's label
    res = SegMetrics(3)
    res.update(torch.as_tensor(pred)[None], torch.as_tensor(target)[None])
    out = res.compute(["bg", "a", "b"])
    assert out["per_image_mean_dice"] == 1.0 and out["per_image_dice"]["b"] is None
    assert out["mean_dice"] == 1.0 and out["absent_classes"] == {"b": 1}


def test_image_with_background_only_is_left_out_of_the_per_image_mean():
    pairs = [(np.array([[0, 1]]), np.array([[0, 0]])), (np.array([[1, 1]]), np.array([[1, 1]]))]
    out = SegMetrics(2)
    for p, t in pairs:
        out.update(torch.as_tensor(p)[None], torch.as_tensor(t)[None])
    assert out.compute(["bg", "a"])["per_image_mean_dice"] == 1.0


def test_mean_dice_of_label_maps():
    a = np.array([[0, 1, 1], [2, 2, 255]])
    assert mean_dice(a, a, 3) == 1.0
    b = a.copy()
    b[0, 0] = 3  # a class absent from the reference
    assert mean_dice(b, a, 4) == 1.0
