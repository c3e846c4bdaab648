"""``adele report``: one self-contained HTML page (index.html + figures/*.png) for one or more runs.

The page references only files it writes next to itself (no CDN, fonts or
scripts). Sections: runs and the settings that differ; val/test Dice and IoU
side by side (mean ± sample std over seeds when runs differ only in
``train.seed`` / ``data.noise_seed``);
training labels vs clean; memorization curves; then per run: per-class
training IoU with the fitted onset curve, correction rounds, and example
overlays (image, noisy label, corrected label, prediction, clean label); the masks
to re-annotate, the verdict on the labels and, with clean labels, the review
curve (:mod:`adele.reporting.quality_section`).
"""
from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..config import flatten
from ..errors import AdeleError
from ..probabilities import predict_probs
from ..data.dataset import RunData
from ..run import RunFolder
from ..run.files import label_rounds
from ..labels.ranking import rank_given_labels, true_error_frac
from .quality_section import quality_html
from ..safety import check_output, staged_output
from . import figures
from .memorization import run_memorization
from .class_curves import class_curves
from .seed_groups import group_by_setting, unique_names

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:16px 24px;color:#222;line-height:1.4}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;border-bottom:2px solid #ddd;padding-bottom:3px;margin-top:1.8em}
h3{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;white-space:nowrap}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.mean td{font-weight:600;background:#fafafa}
tr td.best{background:#e3f3e3}
td.absent{color:#999;background:#f7f7f7;font-style:italic}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}
.note{color:#666;font-size:.85em}.scroll{overflow-x:auto}
nav a{margin-right:12px}code{background:#f4f4f4;padding:0 3px}
"""

METRIC_NAMES = {"dice": "Dice", "iou": "IoU"}


def _e(v) -> str:
    return html.escape(str(v))


def _fmt(v: Optional[float], nd: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


_NUMERIC = re.compile(r"^[-+]?[\d.]+( ± [\d.]+)?( → [-\d.]+)?( \([\d.]+\))?$|^-$|^[\d.]+ @ [\d-]+$|^\d+/\S+$")
_NUM = " class='n'"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()) -> str:
    """Cells are HTML already; a row whose first cell starts with 'mean' is emphasized."""
    out = ["<div class='scroll'><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for row in rows:
        cls = " class='mean'" if str(row[0]).startswith(("mean", "per-image")) else ""
        out.append(f"<tr{cls}>" + "".join(c if c.startswith("<td") else f"<td{_NUM if _NUMERIC.match(c) else ''}>{c}</td>" for c in row) + "</tr>")
    return "\n".join(out) + "</table></div>"


# ----------------------------------------------------------------------------- sections


def _yaml(v) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def runs_section(runs: list[RunFolder]) -> str:
    rows = []
    for r in runs:
        m = r.metrics or {}
        best = m.get("best_val", {})
        d = r.raw_config.get("data", {})
        labels = "clean" if d.get("train_labels") == "clean" else (f"noisy: {d['noise']}" if d.get("noise") else "as given")
        rows.append([_e(r.name), _e(r.method), _e(r.info.get("dataset", "?")), _e(labels),
                     f"{r.epochs_done}/{r.raw_config.get('train', {}).get('epochs', '?')}", _e(r.seed),
                     "yes" if r.finished else "<b>no</b> (no metrics.json)",
                     f"{_fmt(best.get('val_mean_dice'))} @ {best.get('epoch', '-')}"])
    parts = [_table(["run", "method", "dataset", "training labels", "epochs", "seed", "finished", "best val Dice"], rows)]
    flats = [flatten(r.resolved_config) for r in runs]
    keys = sorted({k for f in flats for k in f})
    diff = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    if len(runs) > 1:
        if diff:
            parts.append("<p class='note'>settings that differ between the runs:</p>")
            parts.append(_table(["setting"] + [_e(r.name) for r in runs], [[_e(k)] + [_e(_yaml(f.get(k))) for f in flats] for k in diff]))
        else:
            parts.append("<p class='note'>all runs have the same settings.</p>")
    return "\n".join(parts)


def datasets_note(runs: list[RunFolder]) -> str:
    """A note for the tables that compare runs, when the runs were trained on different datasets (else "")."""
    by: dict[str, list[str]] = {}
    for r in runs:
        by.setdefault(str(r.info.get("dataset", "?")), []).append(r.name)
    if len(by) < 2:
        return ""
    which = "; ".join(f"{d}: {', '.join(names)}" for d, names in by.items())
    return (f"<p class='note'><b>The runs were trained on different datasets</b> ({_e(which)}): their numbers come from "
            "different images and classes, so compare them only within a dataset.</p>")


def _group_label(group: list[RunFolder]) -> str:
    if len(group) == 1:
        return _e(group[0].name)
    seeds = ", ".join(str(r.seed) for r in group)
    prefix = os.path.commonprefix([r.name for r in group])
    names = f"{prefix}*" if len(prefix) >= 3 else ", ".join(r.name for r in group)
    return f"{_e(names)}<br><span class='note'>mean ± std, {len(group)} seeds ({_e(seeds)})</span>"


def _values(group: list[RunFolder], split: str, metric: str, key: Optional[str]) -> list[float]:
    vals = []
    for r in group:
        s = (r.metrics or {}).get(split) or {}
        v = s.get(metric, {}).get(key) if key is not None else s.get(metric)
        if v is not None:
            vals.append(float(v))
    return vals


def metrics_section(runs: list[RunFolder]) -> str:
    """One table per split: rows = classes and means, columns = settings x (Dice, IoU)."""
    groups = group_by_setting(runs)
    # every run's foreground classes, in order of first appearance (runs on different datasets have different ones)
    classes = list(dict.fromkeys(c for r in runs for c in r.classes[1:]))
    parts = [datasets_note(runs)]
    for split in ("test", "val"):
        if not any((r.metrics or {}).get(split) for r in runs):
            continue
        head = ["class"] + [f"{_group_label(g)}<br>{m}" for g in groups for m in METRIC_NAMES.values()]
        spec = [(c, "{m}", c) for c in classes] + [("mean (fg)", "mean_{m}", None), ("per-image mean", "per_image_mean_{m}", None)]
        rows = []
        for label, metric, key in spec:
            cells = {}
            for gi, g in enumerate(groups):
                for m in METRIC_NAMES:
                    vals = _values(g, split, metric.format(m=m), key)
                    cells[gi, m] = (float(np.mean(vals)) if vals else None, float(np.std(vals, ddof=1)) if len(vals) > 1 else None)
            absent = _absent_fp(runs, split, key) if key is not None else None
            if absent is not None:  # not in this split's ground truth: no Dice, never in the means
                rows.append([f"<td class='absent'>{_e(label)}</td>"] + [
                    f"<td class='absent' colspan='{len(METRIC_NAMES) * len(groups)}'>absent from the ground truth; "
                    f"false-positive pixels: {_e(absent)}</td>"])
                continue
            row = [_e(label)]
            for gi in range(len(groups)):
                for m in METRIC_NAMES:
                    mean, std = cells[gi, m]
                    others = [cells[j, m][0] for j in range(len(groups)) if cells[j, m][0] is not None]
                    best = mean is not None and len(set(others)) > 1 and mean >= max(others)
                    text = _fmt(mean) + (f" ± {std:.3f}" if std is not None else "")
                    row.append(f"<td class='n best'>{text}</td>" if best else text)
            rows.append(row)
        parts.append(f"<h3>{split} split</h3>" + _table(head, rows))
    if len(parts) == 1:
        return parts[0] + "<p class='note'>no metrics.json yet: the runs have not finished.</p>"
    return "\n".join(parts) + ("<p class='note'>Dataset-level scores (one confusion matrix over the split); 'mean (fg)' is over the "
                                "foreground classes present in the split's ground truth (a class absent from it is greyed out with "
                                "the pixels predicted as it); best setting per row shaded.</p>")


def _absent_fp(runs: list[RunFolder], split: str, cls: str) -> Optional[str]:
    """False-positive pixels per run when ``cls`` is absent from ``split``'s ground truth in every run, else None."""
    counts = []
    for r in runs:
        s = (r.metrics or {}).get(split) or {}
        absent = s.get("absent_classes")
        if absent is None or cls not in absent:
            return None
        counts.append(f"{r.name} {absent[cls]}" if len(runs) > 1 else str(absent[cls]))
    return ", ".join(counts) if counts else None


def label_quality_section(runs: list[RunFolder]) -> str:
    rows = []
    for r in runs:
        q = (r.metrics or {}).get("train_label_quality")
        rounds = r.rounds
        start = rounds[0].get("agreement_before") if rounds else (q or {}).get("mean_dice")
        end = (q or {}).get("mean_dice") if q else (rounds[-1].get("agreement_after") if rounds else None)
        if start is None and end is None:
            continue
        rows.append([_e(r.name), _fmt(start), _fmt(end), str(len(rounds))])
    if not rows:
        return ""
    return ("<h2 id='labels'>Training labels vs clean labels</h2>"
            + datasets_note(runs)
            + _table(["run", "training labels at the start (mean fg Dice vs clean)", "at the end", "correction rounds"], rows)
            + "<p class='note'>Agreement of the labels the model trains on with the clean reference (known for synthetic noise).</p>")


def memorization_section(runs: list[RunFolder], fig_dir: Path, slugs: dict[str, str], notes: Optional[list[str]] = None) -> str:
    items, why = [], []
    for r in runs:
        if not r.memorization:
            why.append(f"{r.name}: no memorization counts (they need clean labels and no augmentation)")
            continue
        try:
            mem = run_memorization(r)
        except (AdeleError, ValueError) as exc:
            why.append(f"{r.name}: {exc}")
            continue
        if mem["wrong"][:, -1].any():  # a run trained on clean labels has no wrong pixel
            items.append((r.name, mem))
        else:
            why.append(f"{r.name}: no wrongly labelled training pixel (trained on clean labels)")
    if not items:
        reason = "; ".join(why)
        if notes is not None:
            notes.append(f"memorization section left out ({reason})")
        return (f"<h2 id='memorization'>Early learning vs memorization</h2><p class='note'>left out: {_e(reason)}.</p>")
    png = figures.memorization_compare(items, fig_dir / "memorization_all.png")
    parts = ["<h2 id='memorization'>Early learning vs memorization</h2>", datasets_note([r for r in runs if r.name in dict(items)]),
             f"<img src='figures/{png.name}' alt='memorization, all runs'>",
             "<p class='note'>Training pixels whose noisy label is wrong: fraction the network predicts (train mode, during the epoch) "
             "as their clean class vs as the wrong noisy class. A baseline learns the clean class first, then memorizes the noise.</p>"]
    for name, mem in items:
        png = figures.memorization(mem, fig_dir / f"{slugs[name]}_memorization.png", title=f"{name}: wrongly labelled training pixels by clean class")
        parts.append(f"<img src='figures/{png.name}' alt='memorization per class, {_e(name)}'>")
    return "\n".join(parts)


def curves_block(r: RunFolder, fig_dir: Path, slug: str) -> str:
    curves = class_curves(r)
    if not any(c.epochs.size for c in curves):
        return "<p class='note'>no training history yet.</p>"
    rounds = r.rounds
    source = "fit used during training (adele_log.jsonl)" if r.adele_log else "post-hoc fit with the run's detection settings (not used in training)"
    png = figures.iou_curves(curves, [x["epoch"] for x in rounds], fig_dir / f"{slug}_iou.png", title=f"{r.name}: training IoU per class; {source}")
    rows = []
    for c in curves:
        fit = "-" if c.fit is None else "a={:.2f} b={:.2f} c={:.2f}".format(*c.fit)
        rows.append([_e(c.name), _e(c.onset if c.onset is not None else "-"), _e(c.flag_epoch or ("yes" if c.flagged else "-")), fit, _e(c.reason)])
    return (f"<h3>Training IoU and memorization onset</h3><img src='figures/{png.name}' alt='training IoU curves, {_e(r.name)}'>"
            + "<details><summary class='note'>onset details per class</summary>"
            + _table(["class", "onset epoch", "flagged at" if r.adele_log else "flagged", "fit", "reason"], rows) + "</details>")


def _per_round_rows(rounds: list[dict], key: str, names) -> list[list[str]]:
    """One row per class that any round records under ``key`` (a {class: value} dict): its value in each round."""
    return [[_e(name)] + [_fmt((x.get(key) or {}).get(name)) for x in rounds] for name in names
            if any(name in (x.get(key) or {}) for x in rounds)]


def rounds_block(r: RunFolder, fig_dir: Path, slug: str) -> str:
    rounds = r.rounds
    if r.method != "adele":
        return ""
    if not rounds:
        return "<h3>Label correction</h3><p class='note'>no correction round happened.</p>"
    classes = r.classes
    png = figures.correction_rounds(rounds, classes, fig_dir / f"{slug}_rounds.png")
    rows = [[str(x["round"]), str(x["epoch"]), _e(", ".join(x.get("corrected", x.get("flagged", [])))), str(x["pixels_changed"]), _fmt(x.get("precision")),
             f"{_fmt(x.get('agreement_before'))} → {_fmt(x.get('agreement_after'))}"] for x in rounds]
    per_class = []
    for name in classes:
        cells = []
        for x in rounds:
            n = (x.get("changed_per_class") or {}).get(name, 0)
            p = (x.get("precision_per_class") or {}).get(name)
            cells.append(f"{n}" + (f" ({p:.2f})" if p is not None else ""))
        if any(c != "0" for c in cells):
            per_class.append([_e(name)] + cells)
    head = ["round", "epoch", "classes corrected", "pixels changed", "precision", "label Dice vs clean"]
    guarded = any("guard" in x for x in rounds)
    if guarded:  # adele.correction.guard_area was on: what it rolled back, and why
        head.append("area guard rolled back")
        for row, x in zip(rows, rounds):
            row.append(_e(", ".join(f"{k} ({v:.2f} x its noisy area)" for k, v in (x.get("guard") or {}).items())) or "-")
    areas = _per_round_rows(rounds, "area_vs_noisy", classes[1:])
    # adele.correction.class_share (the default): each class's bar per round, a probability
    bars = _per_round_rows(rounds, "thresholds", classes)
    return ("<h3>Label correction rounds</h3>"
            + _table(head, rows)
            + (f"<p class='note'>area guard: a class whose area over the training labels moves more than "
               f"{_e(str(r.resolved_config.get('adele', {}).get('correction', {}).get('guard_area')))} (a fraction) from its area in the "
               "given labels has the round's changes rolled back and is not corrected again; stopped: "
               + _e(", ".join(f"{k} at epoch {e}" for k, e in (r.metrics or {}).get("adele", {}).get("guard_stopped", {}).items()) or "none")
               + ".</p>" if guarded else "")
            + f"<img src='figures/{png.name}' alt='correction rounds, {_e(r.name)}'>"
            + "<p class='note'>pixels changed per class (by new label), precision in brackets:</p>"
            + _table(["class"] + [f"r{x['round']}" for x in rounds], per_class)
            + ("<p class='note'>each class's area after the round / its area in the given (noisy) labels, over the training set "
               "(needs no clean labels; well below 1 = the corrections erase the class):</p>"
               + _table(["class"] + [f"r{x['round']}" for x in rounds], areas) if areas else "")
            + ("<p class='note'>per-class thresholds (<code>adele.correction.class_share</code>): a pixel took class k in the round "
               "only with the network's confidence in k above k's bar, the confidence reached by the top share of the pixels "
               "it predicts as k:</p>" + _table(["class"] + [f"r{x['round']}" for x in rounds], bars) if bars else ""))


class _DataCache:
    """Training data per distinct data config (runs of one dataset share it)."""

    def __init__(self):
        self._cache: dict[str, RunData] = {}

    def get(self, r: RunFolder) -> RunData:
        """``r``'s training data (checked against its training images), loaded once per data config."""
        key = json.dumps(r.config.to_dict()["data"], sort_keys=True)
        data = r.training_data(self._cache.get(key))
        self._cache.setdefault(key, data)
        return data


def pick_examples(runs: list[RunFolder], n: int, cache: "_DataCache") -> list[str]:
    """Training ids to show: those the first ADELE run's corrections changed most, else evenly spaced.

    ``runs``: runs of one training set (:func:`examples_per_run` groups them)."""
    for r in runs:
        if label_rounds(r.path):
            try:
                original = cache.get(r).train.original
                last, _ = r.latest_labels()
            except (AdeleError, OSError, ValueError, KeyError):
                continue
            if r.info.get("train_ids"):
                changed = [-int(np.count_nonzero(a != b)) for a, b in zip(original, last)]
                return [r.info["train_ids"][i] for i in np.argsort(changed, kind="stable")[:n]]
    ids = next((r.info.get("train_ids") for r in runs if r.info.get("train_ids")), [])
    if not ids or n <= 0:
        return []
    idx = np.unique(np.linspace(0, len(ids) - 1, n).round().astype(int))
    return [ids[i] for i in idx]


def examples_per_run(runs: list[RunFolder], n: int, cache: "_DataCache") -> dict[str, list[str]]:
    """{run name: training ids to show}, picked once per training set (the runs whose ``train_ids`` are the same), so
    runs trained on different datasets each show their own images and runs on one dataset show the same ones."""
    sets: dict[tuple, list[RunFolder]] = {}
    for r in runs:
        sets.setdefault(tuple(r.info.get("train_ids") or ()), []).append(r)
    out = {}
    for group in sets.values():
        ids = pick_examples(group, n, cache)
        out.update({r.name: ids for r in group})
    return out


def _left_out(notes: Optional[list[str]], r: RunFolder, section: str, reason: str, title: str) -> str:
    """The HTML note of a section left out of a run's part of the report; the reason is also kept for the terminal."""
    if notes is not None:
        notes.append(f"{r.name}: {section} left out ({reason})")
    return f"{title}<p class='note'>{_e(section)} skipped: {_e(reason)}.</p>"


def examples_block(r: RunFolder, ids: list[str], fig_dir: Path, slug: str, cache: _DataCache, device: str,
                   notes: Optional[list[str]] = None) -> str:
    if not ids:
        return ""
    try:
        train = cache.get(r).train
        lm = r.model(device, allow_checkpoint=True)
        files = label_rounds(r.path)
        corrected = r.latest_labels()[0] if files else None
    except AdeleError as exc:
        return _left_out(notes, r, "examples", str(exc), "<h3>Examples</h3>")
    pos = {sid: i for i, sid in enumerate(train.ids)}
    idx = [pos[s] for s in ids if s in pos]
    if not idx:
        return _left_out(notes, r, "examples", "none of the example images is in this run's training set", "<h3>Examples</h3>")
    x = torch.stack([train.images[i] for i in idx]).to(lm.device)
    pred = predict_probs(lm.model, x).argmax(1).cpu().numpy()
    columns = ["noisy label"] + ([f"corrected ({files[-1].stem.replace('_', ' ')})"] if corrected is not None else []) + [f"prediction ({lm.origin})"]
    columns += ["clean label"] if train.clean is not None else []
    rows = []
    for k, i in enumerate(idx):
        row = {"id": train.ids[i], "image": figures.display_image(train.images[i].numpy()), columns[0]: train.original[i]}
        if corrected is not None:
            row[columns[1]] = corrected[i]
        row[f"prediction ({lm.origin})"] = pred[k]
        if train.clean is not None:
            row["clean label"] = train.clean[i]
        rows.append(row)
    png = figures.overlays(rows, columns, r.classes, fig_dir / f"{slug}_examples.png")
    return (f"<h3>Examples (training images)</h3><img src='figures/{png.name}' alt='example overlays, {_e(r.name)}'>"
            f"<p class='note'>At the training resolution; prediction of {_e(lm.origin)} in eval mode.</p>")


def suspects_block(r: RunFolder, n: int, fig_dir: Path, slug: str, cache: _DataCache, device: str,
                   notes: Optional[list[str]] = None, log: Optional[Callable[[str], None]] = None) -> str:
    """Which masks to re-annotate: the run's most suspicious given labels, as overlays and a short ranked table; the verdict
    on the labels (logged too) and, with clean labels, the review curve (:func:`adele.reporting.quality_section.quality_html`)."""
    title = "<h3>Which masks to re-annotate</h3>"
    try:
        data = cache.get(r)
        train = data.train
        q = rank_given_labels(r, lambda: r.model(device, allow_checkpoint=True))
    except (AdeleError, ValueError) as exc:
        return _left_out(notes, r, "masks to re-annotate", str(exc), title)
    quality = quality_html(r.name, q, train, r.classes, data.source.ignore_index, fig_dir, slug, log)
    if n <= 0:
        return quality
    order = np.argsort(q["scores"], kind="stable")
    pred_col = "early-learning prediction" if q["early"] else "final prediction"
    columns = ["given label", "suspect pixels", pred_col] + (["clean label"] if train.clean is not None else [])
    rows = []
    for i in order[:n]:
        row = {"id": f"{train.ids[i]} ({q['scores'][i]:.2f})", "image": figures.display_image(train.images[i].numpy()),
               "given label": train.original[i], "suspect pixels": np.asarray(q["suspect"][i], dtype=bool), pred_col: q["prediction"][i]}
        if train.clean is not None:
            row["clean label"] = train.clean[i]
        rows.append(row)
    png = figures.overlays(rows, columns, r.classes, fig_dir / f"{slug}_suspects.png")
    head = ["rank", "id", "score", "suspect pixels", "disagree_frac"] + (["true wrong-pixel fraction"] if train.clean is not None else [])
    table = []
    for rank, i in enumerate(order[: max(n, 10)], start=1):
        row = [str(rank), _e(train.ids[i]), f"{q['scores'][i]:.3f}", str(int(q["suspect"][i].sum())), f"{q['disagree'][i]:.3f}"]
        if train.clean is not None:
            row.append(f"{true_error_frac(train.original[i], train.clean[i], data.source.ignore_index):.3f}")
        table.append(row)
    return (title + f"<img src='figures/{png.name}' alt='most suspicious training labels, {_e(r.name)}'>"
            + "<p class='note'>The labels the run was given, most suspicious first (score in brackets, lower = more suspicious); "
            + f"red: pixels whose label the probabilities confidently contradict. Probabilities: {_e(q['source'])}. "
            + "The full list and every suspect mask: <code>adele export-labels RUN --out DIR</code>.</p>"
            + _table(head, table) + quality)


# ----------------------------------------------------------------------------- page


def build_report(run_dirs: Sequence[str | Path], out: str | Path, device: str = "cpu", examples: int = 4,
                 log: Callable[[str], None] = print, overwrite: bool = False) -> Path:
    """Write ``out/index.html`` and ``out/figures/*.png`` for the runs (all or nothing); returns the page path."""
    paths = [Path(p) for p in run_dirs]
    check_output(out, "report", paths, overwrite)
    runs = [RunFolder.open(p, name) for p, name in zip(paths, unique_names(paths))]
    with staged_output(out, "report", paths, overwrite) as tmp:
        _write_report(runs, tmp, device, examples, log)
    return Path(out) / "index.html"


def _write_report(runs, out: Path, device: str, examples: int, log: Callable[[str], None]) -> None:
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    slugs = {r.name: f"{i:02d}_{_slug(r.name)}" for i, r in enumerate(runs)}
    cache = _DataCache()
    notes: list[str] = []
    ids = examples_per_run(runs, examples, cache)
    body = [f"<h1>adele report: {_e(', '.join(r.name for r in runs))}</h1>",
            "<nav><a href='#runs'>runs</a><a href='#metrics'>metrics</a><a href='#labels'>labels</a><a href='#memorization'>memorization</a>"
            + "".join(f"<a href='#run-{slugs[r.name]}'>{_e(r.name)}</a>" for r in runs) + "</nav>",
            "<h2 id='runs'>Runs</h2>", runs_section(runs),
            "<h2 id='metrics'>Segmentation scores</h2>", metrics_section(runs),
            label_quality_section(runs), memorization_section(runs, fig_dir, slugs, notes)]
    for r in runs:
        log(f"report: {r.name}")
        slug = slugs[r.name]
        body += [f"<h2 id='run-{slug}'>{_e(r.name)} <span class='note'>({_e(r.method)})</span></h2>",
                 curves_block(r, fig_dir, slug), rounds_block(r, fig_dir, slug), examples_block(r, ids[r.name], fig_dir, slug, cache, device, notes),
                 suspects_block(r, examples, fig_dir, slug, cache, device, notes, log)]
    for note in notes:  # what the page leaves out, said on the terminal too
        log(f"report: {note}")
    page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>adele report</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n")
    (out / "index.html").write_text(page, encoding="utf-8")
