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


# ---------------------------------------------------------------- K-fold splits

@pytest.mark.parametrize("n,k", [(72, 5), (10, 3), (7, 7), (5, 2)])
def test_kfold_never_scores_an_image_with_a_model_that_saw_it(n, k):
    from adele.core.quality import kfold_assignment

    folds = kfold_assignment(n, k, seed=4)
    assert folds.shape == (n,) and set(folds.tolist()) == set(range(k))
    sizes = np.bincount(folds, minlength=k)
    assert sizes.max() - sizes.min() <= 1
    for f in range(k):
        trained_on, scored = set(np.flatnonzero(folds != f)), set(np.flatnonzero(folds == f))
        assert not trained_on & scored and trained_on | scored == set(range(n))
    # every image is scored exactly once over the k folds
    assert sorted(i for f in range(k) for i in np.flatnonzero(folds == f)) == list(range(n))
    np.testing.assert_array_equal(folds, kfold_assignment(n, k, seed=4))
    assert not np.array_equal(folds, kfold_assignment(n, k, seed=5)) or n == k
    with pytest.raises(ValueError):
        kfold_assignment(3, 4)


# ---------------------------------------------------------------- suspect maps

def test_label_equal_to_a_confident_prediction_has_an_empty_suspect_mask():
    rng = np.random.default_rng(7)
    clean = _clean(3, rng)
    probs = _probs(clean, rng, strength=8.0)
    labels = probs.argmax(1)
    assert (probs.max(1) > 0.7).all()
    scores, disagree, suspect = label_quality_scores(labels, probs, 255)
    assert not suspect.any() and (disagree == 0).all() and (scores > 0.9).all()


def test_only_a_confident_disagreement_is_suspect():
    """Where the probabilities favour another class but below tau, the pixel is not suspect; above it, it is."""
    lab = np.zeros((1, 2, 2), dtype=np.int64)
    p = np.zeros((1, C, 2, 2))
    p[0, 0], p[0, 1] = 0.4, 0.6  # class 1 at 0.6 everywhere: above tau 0.5, below 0.7
    for tau, expected in ((0.5, True), (0.7, False)):
        _, disagree, suspect = label_quality_scores(lab, p, 255, tau=tau)
        assert suspect.all() == expected and not (suspect.any() ^ expected) and disagree[0] == float(expected)


# ---------------------------------------------------------------- early-learning probabilities

def _onehot_probs(lab, p=0.9):
    """(C, H, W): p on ``lab``, the rest spread evenly."""
    out = np.full((C,) + lab.shape, (1 - p) / (C - 1), dtype=np.float32)
    np.put_along_axis(out, lab[None].astype(np.int64), p, 0)
    return out


def test_each_class_keeps_its_softmax_from_the_epoch_it_was_flagged():
    """A class flagged before the network memorized its errors keeps the truth; later snapshots only update the others."""
    from adele.core.quality import EarlyLearningProbs, early_learning_scores

    rng = np.random.default_rng(3)
    clean = _clean(2, rng)
    noisy = clean.copy()
    noisy[0][clean[0] == 2] = 0  # image 0: class 2 erased (under-traced to background)
    probs = EarlyLearningProbs([c.shape for c in clean], C)
    early = probs.quantized([_onehot_probs(c) for c in clean])  # the network predicts the truth
    late = probs.quantized([_onehot_probs(n) for n in noisy])  # then the noisy labels
    probs.update(early, [1, 3, 4, 5], epoch=3)  # flagged in epoch 3
    probs.update(early, [2, 0], epoch=4)  # class 2 flagged in epoch 4, the last one: background with it
    probs.update(late, [], epoch=30)  # the end: every class already has its snapshot
    assert probs.epochs.tolist() == [4, 3, 4, 3, 3, 3]
    q = probs.probs(0)
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-5)
    assert (q.argmax(0)[clean[0] == 2] == 2).all()  # the early truth survives the memorized epochs
    scores, _, suspect = early_learning_scores(probs, list(noisy), 255)
    assert suspect[0][clean[0] == 2].mean() > 0.99 and not suspect[1].any()
    assert not suspect[0][clean[0] != 2].any() and scores[0] < scores[1]
    # with every class taken at the end, the memorized labels win: nothing is suspect
    plain = EarlyLearningProbs([c.shape for c in clean], C)
    plain.update(late, range(C), epoch=30)
    assert not any(m.any() for m in early_learning_scores(plain, list(noisy), 255)[2])


def test_early_probs_are_exact_and_checked():
    from adele.core.quality import EarlyLearningProbs

    shapes = [(4, 5), (3, 2)]
    probs = EarlyLearningProbs(shapes, 3)
    assert probs.nbytes == 3 * (20 + 6)
    np.testing.assert_allclose(probs.probs(1), 1 / 3)  # nothing yet: uniform
    rng = np.random.default_rng(0)
    p = [rng.dirichlet(np.ones(3), size=s).transpose(2, 0, 1) for s in shapes]
    probs.update(probs.quantized(p), range(3), epoch=1)
    expected = np.rint(p[0] * 255) / 255
    np.testing.assert_allclose(probs.probs(0), expected / expected.sum(0), atol=1e-6)
    again = EarlyLearningProbs(shapes, 3)
    again.load_state_dict(probs.state_dict())
    np.testing.assert_array_equal(again.probs(1), probs.probs(1))
    with pytest.raises(ValueError, match="another training set"):
        EarlyLearningProbs([(4, 5)], 3).load_state_dict(probs.state_dict())
    with pytest.raises(ValueError, match="expected probabilities"):
        probs.quantized([p[1], p[0]])
