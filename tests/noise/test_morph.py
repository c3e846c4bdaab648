import numpy as np
import pytest

from adele.noise import LabelError, morph_mask, morph_noise, morph_noise_events, random_blob

NUM_CLASSES = 6  # matches the label_maps fixture (conftest.py)
IGNORE = 255


def _disc(shape, center, radius):
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]]
    return (rr - center[0]) ** 2 + (cc - center[1]) ** 2 <= radius ** 2


@pytest.mark.parametrize("target_area", [None, 150, 1000, 4000])
def test_morph_mask_under_is_subset_and_over_is_superset(target_area):
    rng = np.random.default_rng(0)
    for _ in range(5):
        shape = tuple(rng.integers(20, 60, size=2))
        center = (rng.uniform(0, shape[0]), rng.uniform(0, shape[1]))  # may touch the image edge
        mask = random_blob(rng, shape, center, rng.uniform(2, 12))
        for n in (1, 2, 4):
            under = morph_mask(mask, "under", n, target_area)
            over = morph_mask(mask, "over", n, target_area)
            assert under.shape == over.shape == mask.shape
            assert not np.any(under & ~mask)
            assert not np.any(mask & ~over)
            if target_area is None:  # upscaled objects may lose a sub-pixel dilation
                assert over.sum() > mask.sum()


def test_morph_mask_does_not_modify_input_and_zero_iterations_is_identity():
    mask = _disc((30, 30), (15, 15), 6)
    before = mask.copy()
    np.testing.assert_array_equal(morph_mask(mask, "under", 0), mask)
    morph_mask(mask, "over", 3)
    np.testing.assert_array_equal(mask, before)


def test_target_area_normalizes_the_relative_error():
    small, large = _disc((80, 80), (40, 40), 6), _disc((80, 80), (40, 40), 24)

    def lost(mask, target_area):
        return 1 - morph_mask(mask, "under", 2, target_area).sum() / mask.sum()

    # Native resolution: two erosion steps eat much more of the small disc than of the large one.
    native_gap = lost(small, None) - lost(large, None)
    assert native_gap > 0.3
    # Rescaled to the same area first, the gap shrinks a lot (pixel quantization keeps some).
    assert abs(lost(small, 1000) - lost(large, 1000)) < native_gap / 2


def test_tiny_object_vanishes_under_erosion():
    label = np.zeros((20, 20), np.uint8)
    label[5, 5] = 1
    noisy, events = morph_noise_events(label, np.random.default_rng(0), "under", 2,
                                       target_area=None, iterations=1)
    assert not noisy.any()
    assert events == {"under": 1, "over": 0, "vanished": 1}


def test_single_class_images_keep_the_containment_property():
    for seed in range(4):
        rng = np.random.default_rng(seed)
        label = random_blob(rng, (40, 50), (20, 25), 9).astype(np.uint8) * 3
        label[:3] = IGNORE
        under = morph_noise(label, rng, "under", NUM_CLASSES)
        over = morph_noise(label, rng, "over", NUM_CLASSES)
        assert not np.any((under == 3) & (label != 3))
        assert not np.any((label == 3) & (over != 3))
        assert (under == 3).sum() < (label == 3).sum() < (over == 3).sum()


def test_under_only_removes_pixels_to_background(label_maps, check_valid):
    for i, label in enumerate(label_maps):
        noisy = morph_noise(label, np.random.default_rng(i), "under", NUM_CLASSES)
        check_valid(label, noisy)
        changed = noisy != label
        assert changed.any()
        assert np.all(noisy[changed] == 0)


def test_over_never_removes_pixels_except_under_later_classes(label_maps, check_valid):
    for i, label in enumerate(label_maps):
        before = label.copy()
        noisy = morph_noise(label, np.random.default_rng(i), "over", NUM_CLASSES)
        np.testing.assert_array_equal(label, before)
        check_valid(label, noisy)
        for c in range(1, NUM_CLASSES):
            # default painting order is ascending: a pixel of c may only go to a later class
            assert np.all(noisy[label == c] >= c)
        assert np.all(noisy[label == NUM_CLASSES - 1] == NUM_CLASSES - 1)


def test_class_order_sets_painting_order(label_maps):
    label = label_maps[0]
    order = list(range(NUM_CLASSES - 1, 0, -1))
    noisy = morph_noise(label, np.random.default_rng(0), "over", NUM_CLASSES, class_order=order)
    assert np.all(noisy[label == 1] == 1)  # painted last now
    partial = morph_noise(label, np.random.default_rng(0), "over", NUM_CLASSES, class_order=[2])
    grown = (partial != label)
    assert grown.any() and np.all(partial[grown] == 2)


@pytest.mark.parametrize("mode", ["final", "mixed"])
def test_random_modes(label_maps, check_valid, mode):
    picked = set()
    for i, label in enumerate(label_maps):
        noisy, events = morph_noise_events(label, np.random.default_rng(i), mode, NUM_CLASSES)
        check_valid(label, noisy)
        n_classes = len(set(np.unique(label)) - {0, IGNORE})
        assert events["under"] + events["over"] == n_classes
        if mode == "final":
            assert events["under"] == 0 or events["over"] == 0  # one mode per slice
        picked.add((events["under"] > 0, events["over"] > 0))
    expected = {(True, False), (False, True)} if mode == "final" else {(True, True)}
    assert expected <= picked


def test_same_seed_same_bytes_and_background_only(label_maps):
    label = label_maps[1]
    a = morph_noise(label, np.random.default_rng(5), "final", NUM_CLASSES)
    b = morph_noise(label, np.random.default_rng(5), "final", NUM_CLASSES)
    assert a.tobytes() == b.tobytes()
    empty = np.zeros((17, 23), np.uint8)
    empty[0, :4] = IGNORE
    np.testing.assert_array_equal(morph_noise(empty, np.random.default_rng(0), "over", NUM_CLASSES), empty)


def test_odd_shapes_and_edge_objects_keep_shape():
    label = np.zeros((37, 53), np.uint8)
    label[:9, :11] = 1      # touches two image edges
    label[30:, 40:] = 2
    for mode in ("under", "over"):
        out = morph_noise(label, np.random.default_rng(1), mode, 3, target_area=777)
        assert out.shape == label.shape


def test_bad_arguments_raise_clear_errors():
    label = np.zeros((8, 8), np.uint8)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="valid modes"):
        morph_noise(label, rng, "erode", 2)
    with pytest.raises(ValueError, match="lo <= hi"):
        morph_noise(label, rng, "under", 2, iterations=(4, 2))
    with pytest.raises(ValueError, match="lo <= hi"):
        morph_noise(label, rng, "under", 2, iterations=0)
    with pytest.raises(ValueError, match="target_area"):
        morph_noise(label, rng, "under", 2, target_area=0)
    label[0, 0] = 9
    with pytest.raises(LabelError, match="class id 9 but num_classes=9"):
        morph_noise(label, rng, "under", 9)
    with pytest.raises(LabelError, match="2-D"):
        morph_noise(np.zeros((2, 8, 8), np.uint8), rng, "under", 9)


def test_random_painting_order_removes_the_fixed_bias_at_touching_borders():
    # two touching squares, both dilated: with ascending order class 2 always wins the border,
    # with a random order per slice each class wins about half of the slices
    lab = np.zeros((40, 40), np.uint8)
    lab[10:30, 5:20] = 1
    lab[10:30, 20:35] = 2
    rng = np.random.default_rng(0)
    ascending = [morph_noise(lab, rng, "over", target_area=None, iterations=3, variant="painted")[15, 19] for _ in range(20)]
    assert set(ascending) == {2}
    rng = np.random.default_rng(0)
    shuffled = [morph_noise(lab, rng, "over", target_area=None, iterations=3, class_order="random", variant="painted")[15, 19]
                for _ in range(40)]
    assert 10 <= shuffled.count(1) <= 30 and 10 <= shuffled.count(2) <= 30
    with pytest.raises(ValueError, match="class_order"):
        morph_noise(lab, rng, "over", class_order="bogus")


# ---------------------------------------------------------------- the official SegTHOR variant (the default)
def _two_squares(gap):
    lab = np.zeros((60, 60), np.uint8)
    lab[20:40, 5:20] = 1
    lab[20:40, 20 + gap:35 + gap] = 2
    return lab


def test_official_dilation_grows_into_background_only_and_earlier_classes_win():
    lab = _two_squares(0)  # touching
    for seed in range(10):
        noisy = morph_noise(lab, np.random.default_rng(seed), "over", target_area=None, iterations=3)
        assert np.all(noisy[lab != 0] == lab[lab != 0])  # no class is written over another
        grown = noisy != lab
        assert grown.any() and np.all(lab[grown] == 0)
        # the painted variant lets the later class (2) take the border column of class 1
        painted = morph_noise(lab, np.random.default_rng(seed), "over", target_area=None, iterations=3, variant="painted")
        assert np.all(painted[20:40, 17:20] == 2)
    # with a gap between them both grow into it, and the earlier class (1) wins where they meet
    lab = _two_squares(4)
    noisy = morph_noise(lab, np.random.default_rng(0), "over", target_area=None, iterations=3)
    assert list(noisy[25, 20:24]) == [1, 1, 1, 2]
    noisy = morph_noise(lab, np.random.default_rng(0), "over", target_area=None, iterations=3, class_order=[2, 1])
    assert list(noisy[25, 20:24]) == [1, 2, 2, 2]


def test_official_iterations_are_drawn_once_per_slice():
    lab = np.zeros((60, 80), np.uint8)  # two equal separate squares: they must grow alike in every slice
    lab[20:35, 10:25] = 1
    lab[20:35, 50:65] = 2
    growth = set()
    for seed in range(12):
        noisy = morph_noise(lab, np.random.default_rng(seed), "over", target_area=None, iterations=(1, 4))
        g1, g2 = int((noisy == 1).sum() - 225), int((noisy == 2).sum() - 225)
        assert g1 == g2
        growth.add(g1)
        painted = morph_noise(lab, np.random.default_rng(seed), "over", target_area=None, iterations=(1, 4), variant="painted")
        growth.add(-1 if (painted == 1).sum() != (painted == 2).sum() else 0)
    assert len(growth - {-1, 0}) >= 3 and -1 in growth  # the draw varies between slices; painted draws per class


def test_official_erosion_only_sets_background_and_normalizes_size():
    lab = np.zeros((120, 120), np.uint8)
    lab[10:20, 10:20] = 1      # 100 px
    lab[40:100, 40:100] = 2    # 3600 px
    noisy = morph_noise(lab, np.random.default_rng(0), "under", target_area=1000, iterations=2)
    changed = noisy != lab
    assert changed.any() and np.all(noisy[changed] == 0)
    # at a normalized size, both objects lose a similar fraction of their area
    lost = [1 - (noisy == c).sum() / (lab == c).sum() for c in (1, 2)]
    native = morph_noise(lab, np.random.default_rng(0), "under", target_area=None, iterations=2)
    lost_native = [1 - (native == c).sum() / (lab == c).sum() for c in (1, 2)]  # 0.64 and 0.13
    assert min(lost) > 0.1 and abs(lost[0] - lost[1]) < 0.5 * abs(lost_native[0] - lost_native[1])


def test_cubic_resize_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    from adele.noise._common import cubic_resize_mask
    rng = np.random.default_rng(0)
    total = differ = 0
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(15, 80, 2))
        mask = random_blob(rng, (h, w), (rng.uniform(0, h), rng.uniform(0, w)), rng.uniform(2, 10))
        nh, nw = (int(v) for v in rng.integers(8, 300, 2))
        ref = cv2.resize(mask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_CUBIC) > 0
        ours = cubic_resize_mask(mask, (nh, nw))
        total, differ = total + ref.size, differ + int((ref != ours).sum())
    assert differ <= 1e-4 * total  # OpenCV's fixed-point rounding at exactly one half


def test_official_noise_on_the_reachable_part_equals_the_whole_image_computation():
    from scipy import ndimage

    from adele.noise._common import STRUCT8, cubic_resize_mask
    from adele.noise.morph import _resize_morph_resize

    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(20, 70, 2))
        mask = random_blob(rng, (h, w), (rng.uniform(0, h), rng.uniform(0, w)), rng.uniform(2, 10))  # may touch the edge
        if not mask.any():
            continue
        big = tuple(int(v) for v in rng.integers(10, 200, 2))
        for mode, n in (("under", 2), ("over", 3)):
            z = cubic_resize_mask(mask, big)
            z = (ndimage.binary_erosion(z, STRUCT8, iterations=n, border_value=1) if mode == "under"
                 else ndimage.binary_dilation(z, STRUCT8, iterations=n))
            np.testing.assert_array_equal(_resize_morph_resize(mask, big, mode, n), cubic_resize_mask(z, mask.shape))
