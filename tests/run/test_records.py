"""The typed records a run writes give the dicts its files have always held: keys in the files' order, a part that
does not apply to the run left out (not written as null)."""
from adele.run.records import ChangeScores, EpochRow, RoundRecord, ValScores


def test_epoch_row_columns_in_history_order_and_absent_parts_left_out():
    row = EpochRow(epoch=3, lr=0.01, loss=0.5, train_mean_iou=None, train_iou={"background": 0.9, "a": None})
    row.time_s, row.peak_rss_mb = 1.5, 100.0
    assert list(row.to_dict()) == ["epoch", "lr", "loss", "train_mean_iou", "train_iou/background", "train_iou/a", "time_s", "peak_rss_mb"]
    row.consistency, row.method, row.quality_s = 0.2, {"flagged": 1, "correction_round": 1}, 0.3
    row.val = ValScores(None, 0.4, {"a": None}, {"noisy": 0.3})
    out = row.to_dict()
    assert list(out) == ["epoch", "lr", "loss", "consistency", "train_mean_iou", "train_iou/background", "train_iou/a", "flagged",
                         "correction_round", "quality_s", "val_mean_dice", "val_mean_iou", "val_dice/a", "val_noisy_mean_dice",
                         "time_s", "peak_rss_mb"]
    assert out["val_mean_dice"] is None and out["train_iou/a"] is None  # a value that is None stays a column


def test_round_record_keys_in_log_order_and_scores_keep_a_null_precision():
    rec = RoundRecord(1, 4, ["a"], ["a"], 0, {"background": 0, "a": 0}, {"a": 1.0}, {"a": 0.9}, {"a": 0.1})
    assert list(rec.to_dict()) == ["round", "epoch", "flagged", "corrected", "pixels_changed", "changed_per_class", "area_vs_noisy",
                                   "predicted_area_vs_labels", "confident_background_share"]
    rec.not_learned, rec.guard_images, rec.guard = {}, {}, {}
    rec.scores = ChangeScores(None, {"background": None, "a": None}, 0.5, 0.5)
    out = rec.to_dict()
    assert list(out)[9:] == ["not_learned", "guard_images", "guard", "precision", "precision_per_class", "agreement_before", "agreement_after"]
    assert out["precision"] is None and out["not_learned"] == {}
