import numpy as np
import pytest

from adele.core.quality import label_quality_scores
from adele.noise import synthetic_label_map

C = 6


def _probs(clean, rng, strength=5.0):
    """A confident, mostly right 'model': softmax(strength * onehot(clean) + noise); (N, C, H, W)."""
    logits = strength * np.eye(C)[clean].transpose(0, 3, 1, 2) + rng.normal(0, 0.5, (len(clean), C) + clean.shape[1:])
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _clean(n, rng):
    return np.stack([synthetic_label_map(np.random.default_rng([3, i]), shape=(40, 48), num_classes=C) for i in range(n)])


def test_more_corrupted_pixels_give_lower_scores():
    rng = np.random.default_rng(0)
    clean = _clean(6, rng)
    probs = _probs(clean, rng)
    noisy = clean.copy()
    corrupted = np.zeros(clean.shape, dtype=bool)
    for i in range(6):  # image i: fraction 0.04 * i of its pixels relabelled to a wrong class
        flip = rng.random(clean.shape[1:]) < 0.04 * i
        noisy[i][flip] = (clean[i][flip] + rng.integers(1, C, flip.sum())) % C
        corrupted[i] = flip
    scores, disagree, suspect = label_quality_scores(noisy, probs, 255)
    assert scores.shape == disagree.shape == (6,) and suspect.shape == clean.shape and suspect.dtype == bool
    assert np.all(np.diff(scores) < 0), scores
    assert np.all(np.diff(disagree) > 0), disagree
    assert scores[0] > 0.9 and np.all((scores >= 0) & (scores <= 1))
    assert (suspect & corrupted).sum() / suspect.sum() > 0.95  # suspected pixels are the corrupted ones
    np.testing.assert_allclose(disagree, suspect.reshape(6, -1).mean(1))


def test_small_structures_count():
    """Erasing a whole small class costs more than erasing as many pixels of a large one."""
    rng = np.random.default_rng(1)
    clean = _clean(1, rng)[0]
    sizes = np.bincount(clean.ravel(), minlength=C)[1:]
    small, large = 1 + int(np.argmin(sizes)), 1 + int(np.argmax(sizes))
    n = int(sizes.min())
    a = clean.copy()
    a[a == small] = 0
    b = clean.copy()
    b[np.flatnonzero(b.ravel() == large)[:n] // b.shape[1], np.flatnonzero(b.ravel() == large)[:n] % b.shape[1]] = 0
    labels = np.stack([a, b])
    scores, _, _ = label_quality_scores(labels, _probs(np.stack([clean, clean]), rng), 255)
    assert scores[0] < scores[1], (scores, n, sizes)


def test_ignore_pixels_and_errors():
    rng = np.random.default_rng(2)
    clean = _clean(2, rng)
    probs = _probs(clean, rng)
    labels = clean.copy()
    labels[0, :10] = 255
    labels[1] = 255
    scores, disagree, suspect = label_quality_scores(labels, probs, 255)
    assert not suspect[0, :10].any() and scores[1] == 1.0 and disagree[1] == 0.0
    with pytest.raises(ValueError, match="same N, H, W"):
        label_quality_scores(labels[:, :5], probs, 255)
    with pytest.raises(ValueError, match="class ids"):
        label_quality_scores(np.full_like(labels, C), probs, 255)
