"""Seeded synthetic label maps and a validity check shared by the noise tests."""

import numpy as np
import pytest

from adele.noise import synthetic_label_map

NUM_CLASSES = 6
IGNORE = 255


@pytest.fixture(scope="session")
def label_maps():
    """Six (48, 56) uint8 atlas-like maps, classes 0..5, ~3% ignore pixels (255)."""
    return [
        synthetic_label_map(np.random.default_rng([7, i]), shape=(48, 56), num_classes=NUM_CLASSES,
                            n_blobs=3, ignore_fraction=0.03)
        for i in range(6)
    ]


@pytest.fixture(scope="session")
def check_valid():
    """Assert that ``noisy`` is a valid noisy version of ``clean``."""

    def check(clean, noisy, num_classes=NUM_CLASSES, ignore_index=IGNORE):
        assert noisy.dtype == np.uint8 and noisy.shape == clean.shape
        ignore = clean == ignore_index
        np.testing.assert_array_equal(noisy[ignore], clean[ignore])
        assert not np.any(noisy[~ignore] == ignore_index), "noise wrote into ignore_index"
        assert noisy[~ignore].max(initial=0) < num_classes

    return check
