"""How fast a ranking finds the wrong pixels (review curves), and a verdict on a label set.

**Review curve** (:func:`review_curve`). The masks are reviewed in ranked
order, most suspicious first. After the first j masks:

    x = j / N                                  (share of masks reviewed)
      or  sum of their labelled pixels / all labelled pixels   (share of pixels reviewed; ``size`` given)
    y = sum of their wrong pixels / all wrong pixels           (share of the wrong pixels found)

Masks with the same suspicion are reviewed as one block: the curve is a
straight line across it, the expected curve of a random order among them.
The area is the trapezoid sum over x in [0, 1]. A random order's expected
curve is the diagonal (area 0.5, on both axes); the oracle
(:func:`oracle_curve`) reviews the masks with the most wrong pixels first
(masks axis) or with the highest share of wrong pixels first (pixels axis),
the best any ranking can do. Without any wrong pixel y is undefined (NaN).

**Verdict** (:func:`label_verdict`): are the labels usable as they are?

* Estimated share of wrong pixels of class c (by the given label)::

      share_c = |suspect pixels labelled c| / |pixels labelled c|

  with ``suspect`` the pixels where the early-learning probabilities put
  another class above ``quality.tau`` (``adele.core.quality``); "all" pools
  every labelled pixel. 95% interval: percentile bootstrap over images
  (1000 resamples of the N images with replacement, seed 0) of the same
  ratio; it covers the sampling of the images, not a bias of the suspect map.
* Systematic errors of foreground class c. Per image where the given label
  L or the early-learning prediction P (argmax of the probabilities) shows c::

      d_i = (|L == c| - |P == c|) / max(|L == c|, |P == c|)    in [-1, 1]

  Sign test over the images with d_i != 0 (two-sided binomial, p = 1/2);
  the class is *systematic* when p < 0.05 / (number of foreground classes
  tested) (Bonferroni: ten classes at 0.05 each would raise one false alarm
  in every two label sets) and |median d_i| >= 0.10 (the typical image's
  class area is off by a tenth). Sign > 0: "drawn larger than learned".
  Random boundary errors (dilated in some images, eroded in others) have no
  consistent sign; a drawing habit has. A network that under- or
  over-segments a class early in training reads the same way, so the test
  names candidates for a look, not proven habits. A class the early-learning
  prediction misses on more than half of the images whose label shows it
  was not learned: it is not tested, and the verdict does not judge it (its
  pixels are suspect because the network never predicts it, not because
  they are wrong).
* Unsure share: labelled pixels where the prediction differs from the label
  but without confidence (not suspect), over all labelled pixels. The
  estimate cannot see these; a network that has not learned the images yet
  (too few epochs) disagrees everywhere without confidence and would make any
  label set look clean.
* Verdict, with ``USABLE_SHARE`` = 10%, over background and the learned
  classes, checked in this order: *correct before training* when some
  class's estimate is at or above 10%; *cannot tell* when the unsure share is
  at least ``UNSURE_SHARE`` (25%: a guard against a network that had not
  learned the images, not a calibrated level) or no foreground class was
  learned; *correct before training* when a class is systematic; *usable as
  they are* when every class's upper bound is below 10%; otherwise *probably
  usable* (an interval reaches 10%). Why 10%, measured: the estimate has a
  floor, the network's own confident disagreement with correct labels (on
  clean labels it read 3-7% per class on the separate structures and 6-10%
  per class, 3-4% pooled, on the clean images of the label-quality
  benchmark), so a lower bar calls clean labels wrong; mild noise (10% of
  the pixels wrong) read 12-13%. How well the estimate tracks the true
  share: ``benchmarks/bench_label_quality.py`` (docs/benchmarks.md).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.stats import binomtest

#: a label set is usable as it is when every class's estimated share of wrong pixels (its upper bound) is below this
USABLE_SHARE = 0.10
#: "cannot tell" when the prediction disagrees with the labels without confidence on at least this share of the pixels
UNSURE_SHARE = 0.25
#: systematic: |median signed relative area difference| at least this ...
SYSTEMATIC_FLOOR = 0.10
#: ... and the sign test below this, divided by the number of classes tested
SYSTEMATIC_ALPHA = 0.05


# ----------------------------------------------------------------------------- review curves


@dataclass(frozen=True)
class Curve:
    """A review curve: x (share reviewed) and y (share of wrong pixels found), both from 0 to 1."""

    x: np.ndarray
    y: np.ndarray

    @property
    def area(self) -> float:
        """Trapezoid area over x in [0, 1] (NaN without wrong pixels)."""
        return float(np.sum(np.diff(self.x) * (self.y[1:] + self.y[:-1]) / 2.0))

    def found_at(self, share: float) -> float:
        """Share of the wrong pixels found after reviewing ``share`` of the masks (or pixels)."""
        return float(np.interp(share, self.x, self.y))

    def on_grid(self, grid: np.ndarray) -> np.ndarray:
        return np.interp(grid, self.x, self.y)


def review_curve(suspicion: Sequence[float], wrong: Sequence[float], size: Optional[Sequence[float]] = None) -> Curve:
    """Review curve of ranking masks by ``suspicion`` (higher = reviewed first); see the module doc.

    wrong: wrong pixels of each mask; size: labelled pixels of each mask (x = share of pixels reviewed),
    or None (x = share of masks reviewed).
    """
    s = np.asarray(suspicion, dtype=np.float64).ravel()
    w = np.asarray(wrong, dtype=np.float64).ravel()
    weight = np.ones_like(w) if size is None else np.asarray(size, dtype=np.float64).ravel()
    if not (s.size == w.size == weight.size) or s.size == 0:
        raise ValueError(f"suspicion, wrong and size need one value per mask, got {s.size}, {w.size}, {weight.size}")
    if not np.isfinite(s).all():
        raise ValueError("suspicion must be finite")
    if (w < 0).any() or (weight < 0).any() or weight.sum() <= 0:
        raise ValueError("wrong and size must be >= 0, with some pixels")
    if size is not None and (w > weight).any():
        raise ValueError("a mask has more wrong pixels than labelled pixels")
    order = np.argsort(-s, kind="stable")
    ranked = s[order]
    ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])  # last mask of each block of tied suspicion
    x = np.r_[0.0, np.cumsum(weight[order])[ends] / weight.sum()]
    total = w.sum()
    y = np.r_[0.0, np.cumsum(w[order])[ends] / total] if total > 0 else np.full(x.shape, np.nan)
    return Curve(x, y)


def oracle_curve(wrong: Sequence[float], size: Optional[Sequence[float]] = None) -> Curve:
    """The best review order: most wrong pixels first (masks axis), highest share of wrong pixels first (pixels axis)."""
    w = np.asarray(wrong, dtype=np.float64).ravel()
    if size is None:
        return review_curve(w, w)
    n = np.asarray(size, dtype=np.float64).ravel()
    return review_curve(np.divide(w, n, out=np.zeros_like(w), where=n > 0), w, n)


#: the shares of masks after which the benchmark and the report say how much was found
FOUND_AT = (0.1, 0.2, 0.3)


def review_summary(suspicion, wrong, size) -> dict:
    """Areas of the ranking's curves (masks and pixels axes), the oracle's, and the share found after ``FOUND_AT`` of the masks."""
    by_masks, by_pixels = review_curve(suspicion, wrong), review_curve(suspicion, wrong, size)
    out = {"area_masks": by_masks.area, "area_pixels": by_pixels.area,
           "oracle_masks": oracle_curve(wrong).area, "oracle_pixels": oracle_curve(wrong, size).area}
    out.update({f"found_{round(100 * f)}": by_masks.found_at(f) for f in FOUND_AT})
    return out


# ----------------------------------------------------------------------------- the verdict


def class_pixel_counts(labels: Sequence[np.ndarray], masks: Sequence[np.ndarray], num_classes: int,
                       ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """(labelled, flagged): (N, C) pixels of each image labelled c, and those of them where ``masks`` is set."""
    if len(labels) != len(masks):
        raise ValueError(f"{len(labels)} label maps for {len(masks)} masks")
    labelled = np.zeros((len(labels), num_classes), dtype=np.int64)
    flagged = np.zeros_like(labelled)
    for i, (lab, m) in enumerate(zip(labels, masks)):
        lab = np.asarray(lab)
        m = np.asarray(m, dtype=bool)
        if lab.shape != m.shape:
            raise ValueError(f"image {i}: labels {lab.shape} and mask {m.shape} differ in shape")
        valid = lab != ignore_index
        if (lab[valid] >= num_classes).any():
            raise ValueError(f"image {i}: class ids >= {num_classes}")
        labelled[i] = np.bincount(lab[valid].astype(np.int64), minlength=num_classes)
        flagged[i] = np.bincount(lab[valid & m].astype(np.int64), minlength=num_classes)
    return labelled, flagged


@dataclass
class Shares:
    """Per class (C) and pooled over all labelled pixels: share flagged, with its bootstrap interval."""

    labelled: np.ndarray
    flagged: np.ndarray
    share: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    overall: tuple[float, float, float]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(np.shape(num), np.nan), where=den > 0)


def error_shares(labels, masks, num_classes: int, ignore_index: int = 255, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> Shares:
    """Share of the pixels labelled c that ``masks`` flags, per class and pooled, with a bootstrap interval over images."""
    labelled, flagged = class_pixel_counts(labels, masks, num_classes, ignore_index)
    den = np.c_[labelled, labelled.sum(1)].astype(np.float64)  # last column: every labelled pixel
    num = np.c_[flagged, flagged.sum(1)].astype(np.float64)
    share = _ratio(num.sum(0), den.sum(0))
    lo, hi = share.copy(), share.copy()
    n = len(labelled)
    if n_boot > 0 and n > 1:
        weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
        boot = _ratio(weights @ num, weights @ den)  # (n_boot, C + 1)
        tail = 100 * (1 - level) / 2
        with warnings.catch_warnings():  # a class absent from the whole set: NaN, no warning
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanpercentile(boot, [tail, 100 - tail], axis=0)  # resamples without the class are left out
    return Shares(labelled.sum(0), flagged.sum(0), share[:-1], lo[:-1], hi[:-1], (float(share[-1]), float(lo[-1]), float(hi[-1])))


def area_differences(labels, prediction, cls: int, ignore_index: int = 255) -> np.ndarray:
    """d_i = (|L == c| - |P == c|) / max(both) of each image where the label or the prediction shows class ``cls``."""
    out = []
    for lab, pred in zip(labels, prediction):
        lab, pred = np.asarray(lab), np.asarray(pred)
        valid = lab != ignore_index
        a, b = int(((lab == cls) & valid).sum()), int(((pred == cls) & valid).sum())
        if a or b:
            out.append((a - b) / max(a, b))
    return np.asarray(out, dtype=np.float64)


def systematic_errors(labels, prediction, classes: Sequence[str], ignore_index: int = 255,
                      alpha: float = SYSTEMATIC_ALPHA, floor: float = SYSTEMATIC_FLOOR) -> list[dict]:
    """The sign test of the module doc for each foreground class:
    {name, images, larger, smaller, median, p, learned, systematic}; only learned classes are tested."""
    rows = []
    for k in range(1, len(classes)):
        d = area_differences(labels, prediction, k, ignore_index)
        shown = sum(bool((np.asarray(lab) == k).any()) for lab in labels)
        unseen = sum(bool((np.asarray(lab) == k).any()) and not (np.asarray(p)[np.asarray(lab) != ignore_index] == k).any()
                     for lab, p in zip(labels, prediction))
        larger, smaller = int((d > 0).sum()), int((d < 0).sum())
        p = binomtest(larger, larger + smaller, 0.5).pvalue if larger + smaller else 1.0
        rows.append({"name": classes[k], "images": int(d.size), "larger": larger, "smaller": smaller,
                     "median": float(np.median(d)) if d.size else 0.0, "p": float(p), "learned": 2 * unseen <= shown})
    tested = max(1, sum(r["learned"] and r["larger"] + r["smaller"] > 0 for r in rows))
    for r in rows:
        r["systematic"] = bool(r["learned"] and r["p"] < alpha / tested and abs(r["median"]) >= floor)
    return rows


def _pct(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{100 * v:.1f}%" if v < 0.1 else f"{100 * v:.0f}%"


def _num(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{100 * v:.1f}" if v < 0.1 else f"{100 * v:.0f}"


@dataclass
class Verdict:
    """The verdict of :func:`label_verdict`: per-class shares, the systematic classes, and the decision."""

    classes: list[str]
    shares: Shares
    systematic: list[dict]
    unsure: float = 0.0
    threshold: float = USABLE_SHARE

    def judged(self) -> np.ndarray:
        """Classes the verdict judges: background, and the foreground classes the network learned."""
        learned = {r["name"]: r["learned"] for r in self.systematic}
        return np.array([learned.get(c, True) for c in self.classes])

    def unlearned(self) -> list[str]:
        return [r["name"] for r in self.systematic if not r["learned"]]

    @property
    def status(self) -> str:
        """'correct' | 'cannot tell' | 'usable' | 'probably usable' (see the module doc)."""
        judged = self.judged()
        share, hi = self.shares.share[judged], self.shares.hi[judged]
        if np.nanmax(np.r_[share, 0.0]) >= self.threshold:
            return "correct"
        if self.unsure >= UNSURE_SHARE or not judged[1:].any():
            return "cannot tell"
        if any(r["systematic"] for r in self.systematic):
            return "correct"
        return "usable" if np.nanmax(np.r_[hi, 0.0]) < self.threshold else "probably usable"

    def decision(self) -> str:
        s, judged, thr = self.shares, self.judged(), f"{100 * self.threshold:g}%"
        over = [self.classes[k] for k in np.argsort(-np.nan_to_num(s.share), kind="stable") if judged[k] and s.share[k] >= self.threshold]
        syst = [r["name"] for r in self.systematic if r["systematic"]]
        unlearned = self.unlearned()
        aside = f"; not judged: {', '.join(unlearned)}, which the network had not learned" if unlearned else ""
        if self.status == "cannot tell":
            why = ([f"it disagrees with the labels without confidence on {_pct(self.unsure)} of the pixels"] if self.unsure >= UNSURE_SHARE else []) \
                + ([f"it misses {', '.join(unlearned)} on most images"] if unlearned else [])
            return f"cannot tell (the network had not learned the images: {'; '.join(why)}; train longer)"
        if self.status == "usable":
            return f"usable as they are (every class below {thr}{aside})"
        if self.status == "probably usable":
            reach = [self.classes[k] for k in range(len(self.classes)) if judged[k] and s.hi[k] >= self.threshold]
            return f"probably usable (estimates below {thr}; the interval of {', '.join(reach)} reaches it{aside})"
        why = ([f"{len(over)} class{'es' if len(over) > 1 else ''} at or above {thr}"] if over else []) + \
              ([f"systematic errors in {', '.join(syst)}"] if syst else [])
        return f"correct before training ({'; '.join(why)}{aside})"

    def class_text(self, k: int) -> str:
        s = self.shares
        return f"{self.classes[k]} {_pct(s.share[k])} [{_num(s.lo[k])}, {_num(s.hi[k])}]"

    def systematic_text(self) -> str:
        hits = [f"{r['name']} drawn {'larger' if r['median'] > 0 else 'smaller'} than learned "
                f"({max(r['larger'], r['smaller'])} of {r['images']} images, median {100 * r['median']:+.0f}%)"
                for r in self.systematic if r["systematic"]]
        return "; ".join(hits) if hits else "none"

    def line(self, worst: int = 3) -> str:
        """The one-line verdict: pooled share, the worst classes, the systematic ones, the decision."""
        s = self.shares
        share, lo, hi = s.overall
        judged = self.judged()
        order = [k for k in np.argsort(-np.nan_to_num(s.share, nan=-1.0), kind="stable") if s.labelled[k] > 0 and judged[k]][:worst]
        worst_text = ", ".join(self.class_text(k) for k in order)
        systematic = "not tested" if self.status == "cannot tell" else self.systematic_text()
        return (f"labels: ~{_pct(share)} wrong pixels [{_num(lo)}, {_num(hi)}], {_pct(self.unsure)} unsure (worst: {worst_text}); "
                f"systematic: {systematic}; verdict: {self.decision()}")

    def rows(self) -> list[dict]:
        """One row per class (for tables): pixels, estimate and interval, and the sign test (foreground classes)."""
        s, syst = self.shares, {r["name"]: r for r in self.systematic}
        out = []
        for k, name in enumerate(self.classes):
            r = syst.get(name, {})
            out.append({"class": name, "labelled_pixels": int(s.labelled[k]), "suspect_pixels": int(s.flagged[k]),
                        "est_wrong_share": float(s.share[k]), "lo95": float(s.lo[k]), "hi95": float(s.hi[k]),
                        "images": r.get("images"), "drawn_larger": r.get("larger"), "drawn_smaller": r.get("smaller"),
                        "median_area_diff": r.get("median"), "sign_test_p": r.get("p"), "learned": r.get("learned"),
                        "systematic": r.get("systematic")})
        return out


def label_verdict(labels, suspect, prediction, classes: Sequence[str], ignore_index: int = 255,
                  threshold: float = USABLE_SHARE, n_boot: int = 1000, seed: int = 0) -> Verdict:
    """The verdict on the given ``labels`` from their suspect pixels and the early-learning ``prediction`` (module doc)."""
    shares = error_shares(labels, suspect, len(classes), ignore_index, n_boot, seed)
    unsure = [(np.asarray(p) != np.asarray(lab)) & ~np.asarray(m, dtype=bool) for lab, m, p in zip(labels, suspect, prediction)]
    labelled, flagged = class_pixel_counts(labels, unsure, len(classes), ignore_index)
    return Verdict(list(classes), shares, systematic_errors(labels, prediction, classes, ignore_index),
                   float(flagged.sum() / max(labelled.sum(), 1)), threshold)
