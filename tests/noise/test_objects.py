import numpy as np
import pytest
from scipy import ndimage

from adele.noise import add_blobs, confuse_objects, drop_objects

NUM_CLASSES = 6  # matches the label_maps fixture (conftest.py)
IGNORE = 255


def _n_objects(label):
    return sum(ndimage.label(label == c, np.ones((3, 3)))[1] for c in set(np.unique(label)) - {0, IGNORE})


def test_drop_objects_extremes(label_maps, check_valid):
    label = label_maps[0]
    same, n = drop_objects(label, np.random.default_rng(0), 0.0)
    np.testing.assert_array_equal(same, label)
    assert n == 0 and same is not label
    gone, n = drop_objects(label, np.random.default_rng(0), 1.0)
    check_valid(label, gone)
    assert n == _n_objects(label)
    assert set(np.unique(gone)) <= {0, IGNORE}


def test_drop_objects_drops_whole_objects(label_maps, check_valid):
    for i, label in enumerate(label_maps):
        before = label.copy()
        noisy, n = drop_objects(label, np.random.default_rng(i), 0.4, NUM_CLASSES)
        np.testing.assert_array_equal(label, before)
        check_valid(label, noisy)
        changed = noisy != label
        assert np.all(noisy[changed] == 0)
        # every object is either intact or entirely gone
        for c in range(1, NUM_CLASSES):
            comps, k = ndimage.label(label == c, np.ones((3, 3)))
            for j in range(1, k + 1):
                kept = noisy[comps == j] == c
                assert kept.all() or not kept.any()
        assert n == _n_objects(label) - _n_objects(noisy)


def test_confuse_touching_objects_swap_and_isolated_stays():
    label = np.zeros((20, 30), np.uint8)
    label[2:8, 2:8] = 1
    label[2:8, 8:14] = 2   # touches class 1
    label[14:18, 22:27] = 3  # isolated
    noisy, n = confuse_objects(label, np.random.default_rng(0), 1.0, 4)
    assert n == 2
    assert np.all(noisy[2:8, 2:8] == 2) and np.all(noisy[2:8, 8:14] == 1)
    assert np.all(noisy[14:18, 22:27] == 3)


def test_confuse_uses_only_neighbouring_classes(label_maps, check_valid):
    for i, label in enumerate(label_maps):
        noisy, n = confuse_objects(label, np.random.default_rng(i), 0.5, NUM_CLASSES)
        check_valid(label, noisy)
        changed = noisy != label
        assert n > 0 and changed.any()
        assert np.all(label[changed] != 0) and np.all(noisy[changed] != 0)
        assert set(np.unique(noisy)) <= set(np.unique(label))


def test_add_blobs_paints_only_background(label_maps, check_valid):
    for i, label in enumerate(label_maps):
        noisy, n = add_blobs(label, np.random.default_rng(i), 1.0, NUM_CLASSES)
        check_valid(label, noisy)
        changed = noisy != label
        assert n == 1 and changed.any()
        assert np.all(label[changed] == 0)
        assert len(np.unique(noisy[changed])) == 1
        assert set(np.unique(noisy)) <= set(np.unique(label))  # class among those present
    same, n = add_blobs(label_maps[0], np.random.default_rng(0), 0.0, NUM_CLASSES)
    assert n == 0 and np.array_equal(same, label_maps[0])


def test_add_blobs_on_background_only_and_full_images():
    empty = np.zeros((24, 24), np.uint8)
    empty[0] = IGNORE
    noisy, n = add_blobs(empty, np.random.default_rng(0), 1.0, 3)
    assert n == 1 and set(np.unique(noisy)) - {0, IGNORE} <= {1, 2}
    assert np.all(noisy[0] == IGNORE)
    full = np.ones((10, 10), np.uint8)
    noisy, n = add_blobs(full, np.random.default_rng(0), 1.0, 3, class_source="any")
    assert n == 0 and np.array_equal(noisy, full)


def test_same_seed_same_result_and_bad_probability(label_maps):
    label = label_maps[2]
    for fn in (drop_objects, confuse_objects):
        a = fn(label, np.random.default_rng(3), 0.5)
        b = fn(label, np.random.default_rng(3), 0.5)
        assert a[0].tobytes() == b[0].tobytes() and a[1] == b[1]
        with pytest.raises(ValueError, match=r"probability in \[0, 1\]"):
            fn(label, np.random.default_rng(0), 1.2)
    with pytest.raises(ValueError, match=r"probability in \[0, 1\]"):
        add_blobs(label, np.random.default_rng(0), -0.1, NUM_CLASSES)
    with pytest.raises(ValueError, match="class_source"):
        add_blobs(label, np.random.default_rng(0), 0.5, NUM_CLASSES, class_source="all")
