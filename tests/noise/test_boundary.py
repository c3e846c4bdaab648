import numpy as np
import pytest
from scipy import ndimage

from adele.noise import markov_noise, markov_noise_events, noise_stats, random_blob

NUM_CLASSES = 6  # matches the label_maps fixture (conftest.py)
IGNORE = 255


def _blob_label(seed, cls=2, shape=(48, 56)):
    rng = np.random.default_rng(seed)
    return random_blob(rng, shape, (shape[0] / 2, shape[1] / 2), 12).astype(np.uint8) * cls


def test_valid_deterministic_and_input_untouched(label_maps, check_valid):
    for i, label in enumerate(label_maps):
        before = label.copy()
        a = markov_noise(label, np.random.default_rng(i), NUM_CLASSES)
        b = markov_noise(label, np.random.default_rng(i), NUM_CLASSES)
        np.testing.assert_array_equal(label, before)
        check_valid(label, a)
        assert a.tobytes() == b.tobytes()
        assert not np.array_equal(a, label)


def test_zero_strength_or_zero_steps_is_identity(label_maps):
    label = label_maps[0]
    for kwargs in ({"strength": 0}, {"steps": 0}):
        out = markov_noise(label, np.random.default_rng(0), NUM_CLASSES, **kwargs)
        np.testing.assert_array_equal(out, label)


def test_p_expand_one_only_grows_and_zero_only_shrinks():
    for seed in range(3):
        label = _blob_label(seed)
        grown = markov_noise(label, np.random.default_rng(seed), 3, strength=0.5, p_expand=1.0)
        shrunk = markov_noise(label, np.random.default_rng(seed), 3, strength=0.5, p_expand=0.0)
        assert (grown == 2).sum() > (label == 2).sum() > (shrunk == 2).sum()
        assert np.all(grown[label == 2] == 2)
        assert np.all(label[shrunk == 2] == 2)


def test_fixed_steps_bound_the_displacement():
    label = _blob_label(1)
    steps = 3
    noisy = markov_noise(label, np.random.default_rng(0), 3, p_expand=0.5, steps=steps)
    changed = noisy != label
    assert changed.any()
    # distance from every changed pixel to the clean contour <= T * 2 sqrt(p(1-p)) * 3 sigma + 1
    d_out = ndimage.distance_transform_edt(label != 2)
    d_in = ndimage.distance_transform_edt(label == 2)
    dist = np.where(label == 2, d_in, d_out)
    assert dist[changed].max() <= np.sqrt(steps) * 3 + 1


def test_unbiased_walk_both_expands_and_shrinks_in_coherent_stretches():
    label = _blob_label(3)
    noisy = markov_noise(label, np.random.default_rng(1), 3, strength=1.0)
    added = (noisy == 2) & (label != 2)
    removed = (label == 2) & (noisy != 2)
    assert added.any() and removed.any()
    # spatially correlated: changes form a few connected stretches, not speckle
    n_added = ndimage.label(added, np.ones((3, 3)))[1]
    n_removed = ndimage.label(removed, np.ones((3, 3)))[1]
    assert n_added + n_removed < (added.sum() + removed.sum()) / 5


def test_strength_controls_agreement(label_maps):
    dice = [
        noise_stats(label_maps,
                    [markov_noise(m, np.random.default_rng(i), NUM_CLASSES, strength=s)
                     for i, m in enumerate(label_maps)],
                    NUM_CLASSES)["fg_dice"]
        for s in (0.2, 0.5, 1.5)
    ]
    assert 1.0 > dice[0] > dice[1] > dice[2]


def test_background_only_and_ignore_barrier():
    empty = np.zeros((20, 30), np.uint8)
    empty[5] = IGNORE
    np.testing.assert_array_equal(markov_noise(empty, np.random.default_rng(0), 3), empty)
    label = _blob_label(0)
    label[:, 26:30] = IGNORE  # an ignore stripe through the object
    noisy, events = markov_noise_events(label, np.random.default_rng(0), 3, p_expand=1.0)
    assert np.all(noisy[:, 26:30] == IGNORE)
    assert events == {"markov": 1, "vanished": 0}


def test_bad_arguments():
    label = _blob_label(0)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="p_expand"):
        markov_noise(label, rng, 3, p_expand=1.5)
    with pytest.raises(ValueError, match="strength"):
        markov_noise(label, rng, 3, strength=-1)
    with pytest.raises(ValueError, match="smoothness"):
        markov_noise(label, rng, 3, smoothness=0)
