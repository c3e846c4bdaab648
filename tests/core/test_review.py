import warnings

import numpy as np
import pytest
from scipy import ndimage

from adele.core.review import (area_differences, error_shares, label_verdict, oracle_curve, review_curve, review_summary,
                               systematic_errors)

# ----------------------------------------------------------------------------- review curves


def test_perfect_ranking_is_the_oracle_and_its_area_is_computed_by_hand():
    wrong = [5, 3, 0, 0]
    c = review_curve([4, 3, 2, 1], wrong)
    np.testing.assert_allclose(c.x, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(c.y, [0, 5 / 8, 1, 1, 1])
    # trapezoids: 0.25 * (0 + 5/8) / 2 + 0.25 * (5/8 + 1) / 2 + 0.5 * 1
    assert c.area == pytest.approx(0.78125)
    assert oracle_curve(wrong).area == pytest.approx(c.area)
    worst = review_curve([1, 2, 3, 4], wrong)  # the reverse order finds them last
    assert worst.area == pytest.approx(1 - 0.78125) and worst.area < 0.5
    assert c.found_at(0.25) == pytest.approx(5 / 8) and c.found_at(0.125) == pytest.approx(5 / 16)


def test_random_orders_average_to_the_diagonal_and_all_ties_are_the_diagonal():
    rng = np.random.default_rng(0)
    wrong = rng.integers(0, 50, 20)
    size = rng.integers(50, 200, 20)
    areas = [review_curve(rng.permutation(20), wrong).area for _ in range(3000)]
    assert np.mean(areas) == pytest.approx(0.5, abs=0.005)
    tied = review_curve(np.zeros(20), wrong)
    np.testing.assert_allclose(tied.x, [0, 1])
    np.testing.assert_allclose(tied.y, [0, 1])
    assert tied.area == pytest.approx(0.5) and review_curve(np.zeros(20), wrong, size).area == pytest.approx(0.5)


def test_a_block_of_ties_is_a_straight_line_the_expectation_of_a_random_order_within_it():
    c = review_curve([2, 1, 1], [0, 3, 1])
    np.testing.assert_allclose(c.x, [0, 1 / 3, 1])
    np.testing.assert_allclose(c.y, [0, 0, 1])
    assert c.area == pytest.approx(1 / 3)
    # the two orders within the tie, averaged, give the same area
    assert np.mean([review_curve([2, 1.5, 1], [0, 3, 1]).area, review_curve([2, 1, 1.5], [0, 3, 1]).area]) == pytest.approx(1 / 3)


def test_pixel_weighted_axis_and_its_oracle_by_share_of_wrong_pixels():
    wrong, size = [5, 5], [10, 30]
    c = review_curve([1, 0], wrong, size)
    np.testing.assert_allclose(c.x, [0, 0.25, 1])
    np.testing.assert_allclose(c.y, [0, 0.5, 1])
    assert c.area == pytest.approx(0.25 * 0.25 + 0.75 * 0.75)
    assert oracle_curve(wrong, size).area == pytest.approx(c.area)  # mask 0 is denser in wrong pixels
    assert review_curve([0, 1], wrong, size).area < 0.5
    assert oracle_curve(wrong).area == pytest.approx(0.5)  # same wrong count: any mask order is as good on the masks axis
    s = review_summary([1, 0], wrong, size)
    assert s["area_pixels"] == pytest.approx(c.area) and s["area_masks"] == pytest.approx(0.5) and s["found_10"] == pytest.approx(0.1)


def test_review_curve_without_wrong_pixels_is_nan_and_bad_input_is_refused():
    assert np.isnan(review_curve([1, 2], [0, 0]).area)
    with pytest.raises(ValueError):
        review_curve([1, 2], [0])
    with pytest.raises(ValueError):
        review_curve([1, np.nan], [1, 0])
    with pytest.raises(ValueError):
        review_curve([1, 2], [5, 0], [3, 3])  # more wrong pixels than pixels


# ----------------------------------------------------------------------------- the verdict

CLASSES = ["background", "a", "b"]


def _discs(n, seed=0, shape=(48, 40)):
    """n label maps with one disc of class 1 and one of class 2 on background (random sizes and positions)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = []
    for _ in range(n):
        lab = np.zeros(shape, dtype=np.uint8)
        for k, (cy, cx) in zip((1, 2), ((14, 12), (32, 27))):
            r = rng.uniform(5, 8)
            lab[(yy - cy - rng.integers(-2, 3)) ** 2 + (xx - cx - rng.integers(-2, 3)) ** 2 < r * r] = k
        out.append(lab)
    return out


def _morph(lab, k, grow, it=2):
    """Class k dilated into background (grow) or eroded to background."""
    m = lab == k
    out = lab.copy()
    if grow:
        out[ndimage.binary_dilation(m, iterations=it) & (lab == 0)] = k
    else:
        out[m & ~ndimage.binary_erosion(m, iterations=it)] = 0
    return out


def test_estimated_share_is_the_suspect_share_per_class_with_a_seeded_interval_that_contains_it():
    clean = _discs(30)
    rng = np.random.default_rng(1)
    given = [_morph(_morph(c, 1, bool(rng.integers(2))), 2, bool(rng.integers(2))) for c in clean]
    wrong = [g != c for g, c in zip(given, clean)]
    s = error_shares(given, wrong, 3, n_boot=500, seed=0)
    for k in range(3):
        lab = np.concatenate([(g == k).ravel() for g in given])
        bad = np.concatenate([((g == k) & w).ravel() for g, w in zip(given, wrong)])
        assert s.share[k] == pytest.approx(bad.sum() / lab.sum())
        assert s.lo[k] < s.share[k] < s.hi[k]
    all_wrong = sum(w.sum() for w in wrong) / sum(g.size for g in given)
    assert s.overall[0] == pytest.approx(all_wrong) and s.overall[1] < all_wrong < s.overall[2]
    again = error_shares(given, wrong, 3, n_boot=500, seed=0)
    np.testing.assert_array_equal(s.lo, again.lo)
    # more images: a narrower interval around the same kind of share
    many = _discs(120, seed=2)
    given_many = [_morph(_morph(c, 1, bool(rng.integers(2))), 2, bool(rng.integers(2))) for c in many]
    wide = error_shares(given_many, [g != c for g, c in zip(given_many, many)], 3, n_boot=500)
    assert (wide.hi[1:] - wide.lo[1:] < s.hi[1:] - s.lo[1:]).all()


def test_a_class_absent_from_every_image_is_nan_without_warnings():
    labels = [np.zeros((4, 4), dtype=np.uint8), np.ones((4, 4), dtype=np.uint8)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = error_shares(labels, [np.zeros((4, 4), bool)] * 2, 3)
    assert np.isnan(s.share[2]) and np.isnan(s.lo[2]) and s.share[0] == 0 and s.labelled.tolist() == [16, 16, 0]


def test_dilated_masks_are_systematic_larger_and_random_boundary_flips_are_not():
    clean = _discs(24)
    grown = [_morph(_morph(c, 1, True), 2, True) for c in clean]
    rows = {r["name"]: r for r in systematic_errors(grown, clean, CLASSES)}
    assert rows["a"]["systematic"] and rows["b"]["systematic"]
    assert rows["a"]["larger"] == 24 and rows["a"]["smaller"] == 0 and rows["a"]["median"] > 0.1
    assert (area_differences(grown, clean, 1) > 0).all()
    rng = np.random.default_rng(3)
    flipped = [_morph(_morph(c, 1, bool(rng.integers(2))), 2, bool(rng.integers(2))) for c in clean]
    rows = {r["name"]: r for r in systematic_errors(flipped, clean, CLASSES)}
    assert not rows["a"]["systematic"] and not rows["b"]["systematic"]
    assert rows["a"]["p"] > 0.05 and rows["a"]["larger"] > 0 and rows["a"]["smaller"] > 0
    # a consistent but tiny difference is below the floor: not systematic
    tiny = [_morph(c, 1, True, it=1) for c in clean]
    big = [_morph(c, 1, True, it=8) for c in clean]
    assert not {r["name"]: r for r in systematic_errors(tiny, big, CLASSES, floor=0.9)}["a"]["systematic"]


def test_verdict_line_for_clean_and_for_consistently_dilated_labels():
    clean = _discs(24)
    none = [np.zeros(c.shape, bool) for c in clean]
    v = label_verdict(clean, none, clean, CLASSES)
    assert v.status == "usable"
    line = v.line()
    assert line.startswith("labels: ~0.0% wrong pixels [0.0, 0.0], 0.0% unsure") and "systematic: none" in line
    assert line.endswith("verdict: usable as they are (every class below 10%)")
    grown = [_morph(c, 1, True) for c in clean]
    v = label_verdict(grown, [g != c for g, c in zip(grown, clean)], clean, CLASSES)
    line = v.line()
    assert v.status == "correct" and "a drawn larger than learned (24 of 24 images" in line and "b drawn" not in line
    assert "(worst: a " in line and "verdict: correct before training (" in line and "systematic errors in a" in line
    rows = {r["class"]: r for r in v.rows()}
    assert rows["a"]["systematic"] and rows["background"]["images"] is None and rows["b"]["est_wrong_share"] == 0


def test_a_network_that_has_not_learned_the_images_gives_no_verdict():
    """No suspect pixel because the network is unsure everywhere: 'cannot tell', not 'usable'."""
    clean = _discs(12)
    lost = [np.full(c.shape, 2, dtype=np.uint8) for c in clean]  # argmax: one class everywhere, never confident
    v = label_verdict(clean, [np.zeros(c.shape, bool) for c in clean], lost, CLASSES)
    assert v.status == "cannot tell" and v.unsure > 0.5 and "verdict: cannot tell (" in v.line()
    # a confident disagreement above 10% in a learned class still says correct
    grown = [_morph(c, 2, True, it=3) for c in clean]
    v = label_verdict(grown, [g != c for g, c in zip(grown, clean)], lost, CLASSES)
    assert v.status == "correct" and "not judged: a, which the network had not learned" in v.line()


def test_a_class_the_network_never_predicts_is_not_judged_nor_tested():
    """Its pixels are all suspect (the network calls them background): that says nothing about the labels."""
    clean = _discs(20)
    no_a = [np.where(c == 1, 0, c).astype(np.uint8) for c in clean]
    v = label_verdict(clean, [c == 1 for c in clean], no_a, CLASSES)
    rows = {r["class"]: r for r in v.rows()}
    assert rows["a"]["learned"] is False and rows["a"]["systematic"] is False and rows["a"]["est_wrong_share"] == 1.0
    assert rows["b"]["learned"] is True and v.status == "usable"
    line = v.line()
    assert "(worst: background 0.0%" in line and " a 100%" not in line
    assert line.endswith("usable as they are (every class below 10%; not judged: a, which the network had not learned)")
