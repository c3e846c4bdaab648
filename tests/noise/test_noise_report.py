import numpy as np
import pytest
from PIL import Image

from adele.noise import format_table, noise_stats, preview_png

NUM_CLASSES = 6  # matches the label_maps fixture (conftest.py)
IGNORE = 255


def test_identical_maps_give_dice_one(label_maps):
    stats = noise_stats(label_maps, [m.copy() for m in label_maps], NUM_CLASSES)
    present = sorted(set(np.unique(np.stack(label_maps))) - {IGNORE})
    np.testing.assert_array_equal(stats["dice"][present], 1.0)
    np.testing.assert_array_equal(stats["iou"][present], 1.0)
    assert stats["fg_dice"] == stats["fg_iou"] == stats["fg_dice_per_image"] == 1.0
    assert stats["changed_fraction"] == 0.0
    assert stats["num_pixels"] == sum(int((m != IGNORE).sum()) for m in label_maps)


def test_known_counts_absent_class_and_ignore():
    clean = np.array([[0, 1, 1, 1], [0, 0, 2, 255]], np.uint8)
    noisy = np.array([[0, 1, 1, 0], [0, 1, 2, 255]], np.uint8)
    stats = noise_stats([clean], [noisy], num_classes=4)
    # class 1: tp 2, fp 1, fn 1 -> dice 4/6, iou 2/4; class 2 exact; class 3 absent
    np.testing.assert_allclose(stats["dice"][:3], [4 / 6, 4 / 6, 1.0])
    np.testing.assert_allclose(stats["iou"][:3], [0.5, 0.5, 1.0])
    assert np.isnan(stats["dice"][3]) and np.isnan(stats["iou"][3])
    assert stats["fg_dice"] == pytest.approx((4 / 6 + 1) / 2)
    assert stats["changed_fraction"] == pytest.approx(2 / 7)
    assert stats["confusion"].sum() == 7


def test_background_only_dataset_has_nan_foreground():
    empty = [np.zeros((4, 4), np.uint8)]
    stats = noise_stats(empty, empty, num_classes=3)
    assert np.isnan(stats["fg_dice"]) and np.isnan(stats["fg_dice_per_image"])
    assert "nan" in format_table(stats)


def test_format_table_lists_every_class(label_maps):
    stats = noise_stats(label_maps, label_maps, NUM_CLASSES)
    names = ["bg", "frontal", "parietal", "temporal", "occipital", "cerebellum"]
    table = format_table(stats, names)
    assert all(n in table for n in names) and "foreground mean" in table
    assert len(table.splitlines()) == NUM_CLASSES + 3
    with pytest.raises(ValueError, match="class names"):
        format_table(stats, names[:2])


def test_mismatched_inputs_raise():
    a = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="matching"):
        noise_stats([a], [], 2)
    with pytest.raises(ValueError, match="shape"):
        noise_stats([a], [np.zeros((4, 5), np.uint8)], 2)
    with pytest.raises(ValueError, match="num_classes=2"):
        noise_stats([a + 3], [a], 2)


def test_preview_png_draws_both_contours(tmp_path, label_maps):
    clean = label_maps[0]
    noisy = np.where(clean == IGNORE, clean, np.roll(clean, 3, axis=1))
    image = np.linspace(0.0, 1.0, clean.size).reshape(clean.shape)
    path = preview_png(image, clean, noisy, tmp_path / "preview.png")
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert rgb.shape == (2 * clean.shape[0], 2 * clean.shape[1], 3)
    colours = {tuple(p) for p in rgb.reshape(-1, 3)}
    assert {(0, 255, 0), (255, 0, 0), (255, 255, 0)} <= colours
    preview_png(clean, clean, clean, tmp_path / "same.png", scale=1)  # uint8 image
    with pytest.raises(ValueError, match="one shape"):
        preview_png(image[:3], clean, noisy, tmp_path / "bad.png")
