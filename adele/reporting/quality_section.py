"""The report's label-quality section: the label verdict and the review curve of a run, for ``adele report``.

The rules are in :mod:`adele.core.review`; this module turns a run's ranking
(:func:`adele.labels.ranking.rank_given_labels`: scores, suspect pixels, the
prediction of the probabilities used) into the verdict's HTML (its text, CSV and Markdown
are :mod:`adele.labels.verdict`'s), and, when the run's clean labels are known
(synthetic noise), the review curve figure and table.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..core.review import FOUND_AT, Verdict, oracle_curve, review_curve
from ..labels.verdict import EXPLAIN, run_verdict, verdict_line
from . import figures

def _cell(text: str, numeric: bool = False) -> str:
    return f"<td class='n'>{text}</td>" if numeric else f"<td>{text}</td>"


def _table(head: Sequence[str], rows: Sequence[Sequence[tuple[str, bool]]]) -> str:
    out = ["<div class='scroll'><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(_cell(t, n) for t, n in row) + "</tr>" for row in rows]
    return "\n".join(out) + "</table></div>"


def verdict_html(v: Verdict, early: bool = True) -> str:
    """The verdict line and, folded, its per-class table."""
    rows = []
    for r in v.rows():
        est = "-" if not np.isfinite(r["est_wrong_share"]) else f"{100 * r['est_wrong_share']:.1f}% [{100 * r['lo95']:.1f}, {100 * r['hi95']:.1f}]"
        sign = "-" if r["images"] is None else f"{r['drawn_larger']} / {r['drawn_smaller']} of {r['images']}"
        med = "-" if r["median_area_diff"] is None else f"{100 * r['median_area_diff']:+.0f}%"
        rows.append([(html.escape(r["class"]), False), (str(r["labelled_pixels"]), True), (est, True), (sign, True), (med, True),
                     ("-" if r["sign_test_p"] is None else f"{r['sign_test_p']:.2g}", True), ("<b>yes</b>" if r["systematic"] else "-", False)])
    head = ["class", "labelled pixels", "estimated wrong share [95%]", "images drawn larger / smaller than learned",
            "median area difference", "sign test p", "systematic"]
    return (f"<h3>Are the labels usable as they are?</h3><p><b>{html.escape(verdict_line(v, early))}</b></p>"
            + "<details><summary class='note'>per class</summary>" + _table(head, rows) + "</details>"
            + f"<p class='note'>{html.escape(EXPLAIN)}.</p>")


def wrong_pixels(given: Sequence[np.ndarray], clean: Sequence[np.ndarray], ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """(wrong, size) per image: pixels whose given label differs from the clean one, and labelled pixels."""
    wrong, size = [], []
    for g, c in zip(given, clean):
        g, c = np.asarray(g), np.asarray(c)
        valid = (g != ignore_index) & (c != ignore_index)
        wrong.append(int((valid & (g != c)).sum()))
        size.append(int(valid.sum()))
    return np.asarray(wrong, dtype=np.int64), np.asarray(size, dtype=np.int64)


AXES = {"masks": "share of masks reviewed (most suspicious first)", "pixels": "share of labelled pixels reviewed"}


def review_figure(panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], path: Path, title: str = "") -> Path:
    """One panel per x axis ({axis label: {curve name: (x, y)}}); names starting with 'oracle' dotted; the diagonal is a random order."""
    fig, axes = figures._figure(1, len(panels), 5.2 * len(panels), 4.2)
    for ax, (xlabel, curves) in zip(axes.flat, panels.items()):
        ax.plot([0, 1], [0, 1], "--", color="0.6", lw=1, label="random order (expected), area 0.500")
        for i, (name, (x, y)) in enumerate(curves.items()):
            oracle = name.startswith("oracle")
            ax.plot(x, y, ":" if oracle else "-", color="k" if oracle else f"C{i}", lw=1.5, label=name)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("share of all wrong pixels found", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="lower right")
        ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return figures._save(fig, path)


def review_html(suspicion: np.ndarray, given, clean, ignore_index: int, fig_dir: Path, slug: str, name: str, ranking: str) -> str:
    """The review curve of a run with known clean labels: figure and table (ranking, random order, oracle), or a note when no pixel is wrong."""
    wrong, size = wrong_pixels(given, clean, ignore_index)
    if not wrong.sum():
        return "<h3>Review curve</h3><p class='note'>no wrongly labelled training pixel: nothing to find.</p>"
    curves = {"masks": (review_curve(suspicion, wrong), oracle_curve(wrong)),
              "pixels": (review_curve(suspicion, wrong, size), oracle_curve(wrong, size))}
    panels = {AXES[a]: {f"{ranking}, area {c.area:.3f}": (c.x, c.y), f"oracle, area {o.area:.3f}": (o.x, o.y)} for a, (c, o) in curves.items()}
    png = review_figure(panels, fig_dir / f"{slug}_review.png", title=f"{name}: wrong pixels found when reviewing the masks in ranked order")

    def found(c):
        return [(f"{100 * c.found_at(f):.0f}%", True) for f in FOUND_AT]

    (mine, oracle), (mine_px, oracle_px) = curves["masks"], curves["pixels"]
    rows = [[(html.escape(ranking), False), (f"{mine.area:.3f}", True), (f"{mine_px.area:.3f}", True), *found(mine)],
            [("random order (expected)", False), ("0.500", True), ("0.500", True), *[(f"{100 * f:.0f}%", True) for f in FOUND_AT]],
            [("oracle (most wrong pixels first)", False), (f"{oracle.area:.3f}", True), (f"{oracle_px.area:.3f}", True), *found(oracle)]]
    head = ["ranking", "area, masks reviewed", "area, pixels reviewed"] + [f"wrong pixels found after {100 * f:.0f}% of the masks" for f in FOUND_AT]
    return (f"<h3>Review curve (clean labels known)</h3><img src='figures/{png.name}' alt='review curve, {html.escape(name)}'>"
            + _table(head, rows)
            + f"<p class='note'>{int(wrong.sum())} wrongly labelled training pixels (given label != clean label). Masks reviewed "
            "in the ranked order above, most suspicious first: the share of all wrong pixels in the masks reviewed so far, against "
            "the share of masks (or of labelled pixels) reviewed. A random order finds them in proportion (area 0.5); the oracle "
            "reviews the masks with the most wrong pixels (the highest share, pixels axis) first.</p>")


def quality_html(name: str, q: dict, train, classes: Sequence[str], ignore_index: int, fig_dir: Path, slug: str,
                 log: Optional[Callable[[str], None]] = None) -> str:
    """The report's verdict (also logged in one line) and, with clean labels, the review curve of the run's ranking."""
    v = run_verdict(q, train.original, classes, ignore_index)
    if log is not None:
        log(f"report: {name}: {verdict_line(v, q['early'])}")
    out = verdict_html(v, q["early"])
    if train.clean is not None:
        ranking = "adele, early-learning probabilities" if q["early"] else "adele, final model's softmax"
        out += review_html(-np.asarray(q["scores"]), train.original, train.clean, ignore_index, fig_dir, slug, name, ranking)
    return out
