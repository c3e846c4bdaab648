"""The ADELE method as pure functions on arrays and tensors.

curves       memorization onset detection (curve fit, per-class flagging)
correction   the label correction rules (official SegTHOR and VOC)
schedule     which classes a correction round corrects, and when
store        compact memory-mapped prediction store (2 bytes / pixel)
consistency  multi-scale consistency loss
quality      per-image label quality scores from a model's softmax
"""

from .consistency import consistency_loss, multiscale_logits, multiscale_loss, total_loss
from .correction import (
    ChangePrecision,
    CorrectionResult,
    PredictionAreas,
    area_guard,
    class_areas,
    class_thresholds,
    confidence_histogram,
    change_precision,
    class_change_counts,
    classes_present,
    correct_labels,
    correct_labels_voc,
    prediction_areas,
    shrink_guard,
)
from .curves import (
    CurveFit,
    MemorizationDetector,
    OnsetResult,
    OnsetRule,
    curve,
    curve_derivative,
    detect_onset,
    fit_curve,
    flat_start_length,
    onset_epoch,
)
from .quality import label_quality_scores
from .schedule import RoundSchedule
from .store import PredictionStore

__all__ = [
    "ChangePrecision",
    "CorrectionResult",
    "CurveFit",
    "MemorizationDetector",
    "OnsetResult",
    "OnsetRule",
    "PredictionStore",
    "RoundSchedule",
    "PredictionAreas",
    "area_guard",
    "class_areas",
    "class_thresholds",
    "confidence_histogram",
    "prediction_areas",
    "change_precision",
    "class_change_counts",
    "classes_present",
    "consistency_loss",
    "correct_labels",
    "correct_labels_voc",
    "curve",
    "curve_derivative",
    "detect_onset",
    "fit_curve",
    "flat_start_length",
    "label_quality_scores",
    "multiscale_logits",
    "multiscale_loss",
    "onset_epoch",
    "shrink_guard",
    "total_loss",
]
