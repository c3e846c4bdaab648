"""The verdict on the labels a run was given, as text: the one line, ``label_quality_classes.csv`` and the exported
README's section (the rules are in :mod:`adele.core.review`; the report's HTML of it is :mod:`adele.reporting.quality_section`'s).

Its input is a run's ranking (:func:`adele.labels.ranking.rank_given_labels`: scores, suspect pixels, the prediction of
the probabilities used).
"""
from __future__ import annotations

import csv
import io
from typing import Sequence

import numpy as np

from ..core.review import Verdict, label_verdict


#: said after the verdict when it comes from the final model (a run without early-learning probabilities)
FINAL_NOTE = " [from the final model's softmax: it has fitted the labels' errors, so the estimate is low]"


def run_verdict(q: dict, labels: Sequence[np.ndarray], classes: Sequence[str], ignore_index: int) -> Verdict:
    """The verdict on the labels a run was given, from ``rank_given_labels``'s output ``q``."""
    return label_verdict(labels, q["suspect"], q["prediction"], classes, ignore_index)


def verdict_line(v: Verdict, early: bool = True) -> str:
    return v.line() + ("" if early else FINAL_NOTE)


def _share(v) -> str:
    return "" if v is None or not np.isfinite(v) else f"{v:.4f}"


def verdict_csv(v: Verdict) -> str:
    """``label_quality_classes.csv``: one row per class (estimated share of wrong pixels, interval, sign test)."""
    buf = io.StringIO()
    rows = v.rows()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _share(x) if k in ("est_wrong_share", "lo95", "hi95", "median_area_diff") else
                    (f"{x:.3g}" if k == "sign_test_p" and x is not None else "" if x is None else x) for k, x in r.items()})
    return buf.getvalue()


EXPLAIN = ("estimated share of wrong pixels of a class = suspect pixels labelled with it / pixels labelled with it "
           "(95% bootstrap interval over images); systematic = the given label's area of the class differs from the "
           "early-learning prediction's with the same sign on most images (sign test, Bonferroni over the classes, "
           "median difference at least 10%); unsure = pixels where the prediction differs from the label without confidence; "
           "usable when every class's upper bound is below 10% and none is systematic; cannot tell when 25% or more of the "
           "pixels are unsure (`adele/core/review.py`; calibration: see docs/benchmarks.md)")


def verdict_markdown(v: Verdict, early: bool = True) -> str:
    """The verdict section of the exported README."""
    return (f"\n## Are the labels usable as they are?\n\n{verdict_line(v, early)}\n\n"
            f"`label_quality_classes.csv` has the estimate of every class: {EXPLAIN}.\n")
