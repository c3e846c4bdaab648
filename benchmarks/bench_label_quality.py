"""Which masks to re-annotate: adele's one-run scores against cleanlab with K-fold out-of-sample probabilities.

Usage::

    python benchmarks/bench_label_quality.py --work DIR                  # both label sets, 3 noise draws, K = 5, 2 jobs
    python benchmarks/bench_label_quality.py --work DIR --datasets colin27 --draws 1 --epochs 5   # a quick look

Data: the embedded Colin27 training slices (72), each given its own noise
severity (clean, mild, the paper's 'final', harsher, harsher + missing and
confused objects; assigned at random per draw), on the AAL labels
(``colin27``) and on the Brodmann labels of the same slices
(``colin27-brodmann``). Every model is trained with the same recipe: the
``colin27`` preset (56x48, Adam, 50 epochs, CE + Dice, weight average), as a
baseline (no correction), one thread per run.

Rankings (image level: lower score = more suspicious; pixel level: a suspect mask):

* **adele, one run**: that run's early-learning probabilities (each class's
  eval-mode training softmax at the epoch its memorization is detected,
  ``adele.core.quality``), kept while it trains; ``early_learning_scores`` and
  its suspect pixels. Cost: 1 training run (+ the tracking passes, measured).
* **cleanlab, K-fold**: ``cleanlab.segmentation.rank.get_label_quality_scores``
  (softmin) and ``cleanlab.segmentation.filter.find_label_issues`` fed with
  out-of-sample probabilities: K models, each trained on the other folds, each
  image predicted by the model that did not see it, as cleanlab prescribes.
  Cost: K runs, plus the model the user trains anyway.
* **adele's formula on the K-fold probabilities** (same K runs): the score with the better probabilities.
* in-sample rows, labelled: both scores on the final model's softmax of its own
  training images (what cleanlab's documentation warns against).

Truth: the wrongly labelled pixels (noisy != clean, at the training
resolution). Image level: Spearman of the suspicion with the fraction of
wrong pixels, and AUROC for finding the noisiest quartile. Pixel level:
precision, recall and F1 of the suspect mask (adele: ``suspect`` at ``quality.tau`` 0.5;
cleanlab: ``find_label_issues``) against the wrong pixels, and the average
precision of ranking all pixels by 1 - probability of the given label
(cleanlab: 1 - its pixel scores), which does not depend on a threshold.
Mean ± std over the draws. Optional extra: ``pip install cleanlab``; without
it the cleanlab rows are left out (one line says so).

Review curves (issue 28, ``adele.core.review``): the masks reviewed in each
ranking's order, most suspicious first; the share of all wrong pixels found
against the share of masks (and of labelled pixels) reviewed; its area, and
the share found after 10%, 20%, 30% of the masks; beside it a random order
(the diagonal, area 0.5) and the oracle (most wrong pixels first). One figure
per label set (``--figure-dir``, mean curves over the draws).

Calibration of the verdict (``adele report`` / ``export-labels``): per class
and draw, the estimated share of wrong pixels (the one-run suspect pixels
labelled c / pixels labelled c, 95% bootstrap interval over images) against
the true share (noisy != clean among the pixels labelled c), on all images
and on the images of each noise severity (clean to harsh: the range);
mean error, mean absolute error and how often the interval holds the truth;
the verdict against the truth's (usable = every class's true share below 5%).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata, spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adele.data import load_colin27, write_array, write_dataset_json  # noqa: E402
from adele.data.colin27 import DATASETS  # noqa: E402
from adele.noise import apply_recipe, parse_recipe  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402

#: severity ladder: level -> recipe (None = clean)
LEVELS = (None, "final:iterations=1-1", "final", "final:target_area=1000", "final:target_area=1000+missing:p=0.3+confusion:p=0.3")
#: short names of the severity levels, for the calibration table
LEVEL_NAMES = ("clean", "mild", "final", "final 1000 px", "final 1000 px + missing + confusion")
#: the training recipe of every run: the colin27 preset on the dataset folder, its own noise off
RECIPE = ["--config", "colin27", "--method", "baseline", "--set", "data.noise=null", "train.threads=1"]


def draw_levels(n: int, seed: int) -> np.ndarray:
    """The severity level (index into LEVELS) of each of the n training images of draw ``seed``."""
    return np.random.default_rng(seed).permutation(np.arange(n) % len(LEVELS))


def image_levels(dataset: str, seed: int) -> dict[str, int]:
    """{training image id: its severity level} of a draw, as :func:`build_dataset` assigned them."""
    ids = load_colin27(DATASETS[dataset]).splits["train"].ids
    return dict(zip(ids, draw_levels(len(ids), seed).tolist()))


def build_dataset(root: Path, seed: int, dataset: str = "colin27") -> np.ndarray:
    """Write the mixed-noise dataset (generic format, with train/labels_clean); returns the level of each training image."""
    src = load_colin27(DATASETS[dataset])
    c = src.num_classes
    tr = src.splits["train"]
    for recipe in LEVELS:
        if recipe is not None:
            parse_recipe(recipe)
    levels = draw_levels(len(tr), seed)
    for i, sid in enumerate(tr.ids):
        clean = tr.labels[i]
        recipe = LEVELS[levels[i]]
        noisy = clean if recipe is None else apply_recipe(clean, recipe, np.random.default_rng([seed, i]), c, 255)[0]
        write_array(root / "train" / "images" / f"{sid}.png", tr.images[i])
        write_array(root / "train" / "labels" / f"{sid}.png", noisy)
        write_array(root / "train" / "labels_clean" / f"{sid}.png", clean)
    for split in ("val", "test"):
        s = src.splits[split]
        for i, sid in enumerate(s.ids):
            write_array(root / split / "images" / f"{sid}.png", s.images[i])
            write_array(root / split / "labels" / f"{sid}.png", s.labels[i])
    write_dataset_json(root, f"{dataset}-mixed-noise", src.classes, 255)
    return levels


def build_fold(full: Path, out: Path, ids: list[str], held: np.ndarray) -> None:
    """A copy of ``full`` whose training split leaves out the images ``held`` (bool by image); those become its test split.

    Deterministic: a fold left half-built by an interruption is completed by writing the same files again.
    """
    for i, sid in enumerate(ids):
        dst = "test" if held[i] else "train"
        for sub in ("images", "labels") + (("labels_clean",) if dst == "train" else ()):
            (out / dst / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy2(full / "train" / sub / f"{sid}.png", out / dst / sub / f"{sid}.png")
    shutil.copytree(full / "val", out / "val", dirs_exist_ok=True)
    shutil.copy2(full / "dataset.json", out / "dataset.json")


def run_jobs(jobs: list[tuple[Path, Path, list[str]]], parallel: int, epochs: int, log=print, recipe: tuple = ()) -> None:
    """Train every (run folder, dataset folder, extra settings) job not done yet, ``parallel`` at a time, one thread each;
    wall time in RUN/bench_time.json."""
    todo = [job for job in jobs if not (job[0] / "bench_time.json").is_file()]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", ADELE_NO_PROGRESS="1")
    running: list[tuple[subprocess.Popen, Path, float]] = []
    while todo or running:
        while todo and len(running) < parallel:
            out, data, extra = todo.pop(0)
            out.parent.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "adele", "train", "--data", str(data), "--out", str(out), "--overwrite",
                   "--epochs", str(epochs), *RECIPE, *recipe, *extra]
            running.append((subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(f"{out}.log", "w")), out, time.perf_counter()))
        time.sleep(0.5)
        for p, out, t0 in list(running):
            if p.poll() is None:
                continue
            running.remove((p, out, t0))
            if p.returncode:
                raise SystemExit(f"training {out} failed (exit {p.returncode}); see {out}.log")
            (out / "bench_time.json").write_text(json.dumps({"wall_s": time.perf_counter() - t0}))
            log(f"  trained {out.parent.name}/{out.name} in {time.perf_counter() - t0:.0f} s")


def auroc(suspicion: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive image is more suspicious than a negative one (ties count 1/2)."""
    r = rankdata(suspicion)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def pixel_prf(mask: np.ndarray, wrong: np.ndarray) -> tuple[float, float, float]:
    tp = float((mask & wrong).sum())
    p = tp / mask.sum() if mask.sum() else float("nan")
    r = tp / wrong.sum() if wrong.sum() else float("nan")
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


def average_precision(suspicion: np.ndarray, positive: np.ndarray) -> float:
    """Area under the precision-recall curve of ranking pixels by ``suspicion`` (mean precision at each true positive)."""
    order = np.argsort(-suspicion.ravel(), kind="stable")
    hits = positive.ravel()[order]
    if not hits.any():
        return float("nan")
    tp = np.cumsum(hits)
    return float((tp[hits] / (np.flatnonzero(hits) + 1)).mean())


def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N, H, W) probability of the given label."""
    return np.take_along_axis(probs, labels[:, None], 1)[:, 0]


def score_draw(one: Path, folds_dir: Path, folds: np.ndarray, k: int, taus: tuple = (), levels: dict | None = None) -> tuple[dict, dict, dict]:
    """{method: {metric: value}} for one draw, a description of the data, and :func:`draw_extras` (``levels``: {image id: level})."""
    import torch

    from adele.config import saved_config
    from adele.core.quality import label_quality_scores
    from adele.engine import load_run_data
    from adele.labels.ranking import score_given_labels
    from adele.probabilities import predict_probs, predict_split
    from adele.run import RunFolder
    from adele.run.files import read_history

    data = load_run_data(saved_config(one / "config.yaml"))
    tr = data.train
    labels, clean = np.stack(tr.original).astype(np.int64), np.stack(tr.clean).astype(np.int64)
    if (labels == 255).any() or (clean == 255).any():
        raise SystemExit("this benchmark assumes no ignored pixels")
    wrong = labels != clean
    frac = wrong.reshape(len(tr), -1).mean(1)
    top = frac >= np.quantile(frac, 0.75)
    def tracking_s(run: Path) -> float:
        return sum(float(r.get("quality_s") or 0) for r in read_history(run))

    def wall(run: Path, with_tracking: bool = True) -> float:
        """Wall time of a training run (a fold model's without the label-quality passes it does not need)."""
        return json.loads((run / "bench_time.json").read_text())["wall_s"] - (0 if with_tracking else tracking_s(run))

    runs_k = [folds_dir / f"fold{f}" for f in range(k)]
    cost_k = sum(wall(r, False) for r in runs_k)
    tracking = tracking_s(one)
    rankings: dict[str, dict] = {}

    t0 = time.perf_counter()
    got = score_given_labels(one, list(labels), 255)
    if got is None:
        raise SystemExit(f"{one}: no early-learning probabilities (quality.track was off)")
    scores, _, suspect, early = got
    early_probs = np.stack([early.probs(i) for i in range(len(tr))])
    rankings["adele early-learning (one run)"] = dict(susp=-scores, mask=np.stack(suspect), runs="1", wall=wall(one) + time.perf_counter() - t0,
                                                       pixel=1 - self_confidence(early_probs, labels))
    for tau in taus:  # the one-run suspect mask at other thresholds (quality.tau): its precision/recall trade-off
        _, _, sus = label_quality_scores(labels, early_probs, 255, tau)
        rankings[f"adele early-learning (one run), quality.tau={tau}"] = dict(susp=-scores, mask=sus, runs="1", wall=wall(one),
                                                                             pixel=1 - self_confidence(early_probs, labels))
    oos = np.zeros((len(tr), len(data.source.classes)) + labels.shape[1:], dtype=np.float32)
    for f, run in enumerate(runs_k):
        lm = RunFolder.open(run).model("cpu")
        idx = np.flatnonzero(folds == f)
        with torch.no_grad():
            oos[idx] = predict_probs(lm.model, torch.stack([tr.images[i] for i in idx])).numpy()
    insample = predict_split(RunFolder.open(one).model("cpu"), tr).astype(np.float32)
    sc, _, sus = label_quality_scores(labels, oos, 255)
    rankings[f"adele formula on {k}-fold out-of-sample softmax"] = dict(susp=-sc, mask=sus, runs=f"{k} + 1", wall=cost_k + wall(one),
                                                                       pixel=1 - self_confidence(oos, labels))
    sc, _, sus = label_quality_scores(labels, insample, 255)
    rankings["adele formula on in-sample softmax (final model)"] = dict(susp=-sc, mask=sus, runs="1", wall=wall(one),
                                                                        pixel=1 - self_confidence(insample, labels))
    try:
        from cleanlab.segmentation.filter import find_label_issues
        from cleanlab.segmentation.rank import get_label_quality_scores
    except ImportError:
        print("cleanlab is not installed (pip install 'adele[cleanlab]' or pip install cleanlab); its rows are left out")
    else:
        for name, probs, runs, cost in ((f"cleanlab, {k}-fold out-of-sample softmax", oos, f"{k} + 1", cost_k + wall(one)),
                                        ("cleanlab, in-sample softmax (not as documented)", insample, "1", wall(one))):
            t0 = time.perf_counter()
            img, pix = get_label_quality_scores(labels, probs, method="softmin", verbose=False, n_jobs=1)
            mask = find_label_issues(labels, probs, verbose=False, n_jobs=1)
            rankings[name] = dict(susp=-np.asarray(img), mask=np.asarray(mask, dtype=bool), runs=runs, wall=cost + time.perf_counter() - t0,
                                  pixel=1 - np.asarray(pix))
    out = {}
    for name, r in rankings.items():
        p, rc, f1 = pixel_prf(r["mask"], wrong)
        out[name] = {"spearman": float(spearmanr(r["susp"], frac)[0]), "auroc_top25": auroc(r["susp"], top),
                     "pixel_precision": p, "pixel_recall": rc, "pixel_f1": f1, "pixel_ap": average_precision(r["pixel"], wrong),
                     "runs": r["runs"], "wall_s": float(r["wall"]),
                     "tracking_s": tracking if name == "adele early-learning (one run)" else None}
    test = json.loads((one / "metrics.json").read_text()).get("test", {}).get("mean_dice")
    desc = {"images": len(tr), "size": list(labels.shape[1:]), "noisy": int((frac > 0).sum()), "wrong_pixels": int(wrong.sum()), "test_mean_dice": test,
            "wrong_frac_median": float(np.median(frac)), "wrong_frac_max": float(frac.max())}
    return out, desc, draw_extras(rankings, labels, clean, np.stack(suspect), early_probs.argmax(1), tr.ids, levels or {}, data.source.classes)


def draw_extras(rankings: dict, labels: np.ndarray, clean: np.ndarray, suspect: np.ndarray, prediction: np.ndarray, ids, levels: dict,
                classes) -> dict:
    """Issue 28 for one draw: the review curves of every image ranking, and the verdict's calibration (one-run suspect pixels
    and early-learning prediction; ``levels``: {image id: severity level})."""
    wrong = (labels != clean).reshape(len(labels), -1).sum(1)
    by_level = np.array([levels.get(sid, -1) for sid in ids])
    return {"review": review_rows(rankings, wrong, np.full(len(labels), labels[0].size)),
            "calibration": calibration(labels, clean, suspect, prediction, by_level, classes)}


#: the x values the draws' review curves are averaged on (the figure)
GRID = np.linspace(0.0, 1.0, 101)


def _review_entry(curve_masks, curve_pixels) -> dict:
    from adele.core.review import FOUND_AT

    return {"area_masks": curve_masks.area, "area_pixels": curve_pixels.area,
            **{f"found_{round(100 * f)}": curve_masks.found_at(f) for f in FOUND_AT},
            "curve_masks": curve_masks.on_grid(GRID).tolist(), "curve_pixels": curve_pixels.on_grid(GRID).tolist()}


def review_rows(rankings: dict, wrong: np.ndarray, size: np.ndarray) -> dict:
    """{ranking: areas, shares found, curves on GRID} for each image ranking (the quality.tau rows share the one-run ranking and are
    left out), a random order (its expected curve, the diagonal) and the oracle (most wrong pixels first)."""
    from adele.core.review import Curve, oracle_curve, review_curve

    out = {name: _review_entry(review_curve(r["susp"], wrong), review_curve(r["susp"], wrong, size))
           for name, r in rankings.items() if "quality.tau=" not in name}
    out["random order (expected)"] = _review_entry(Curve(GRID, GRID), Curve(GRID, GRID))
    out["oracle (most wrong pixels first)"] = _review_entry(oracle_curve(wrong), oracle_curve(wrong, size))
    return out


def calibration(labels: np.ndarray, clean: np.ndarray, suspect: np.ndarray, prediction: np.ndarray, levels: np.ndarray,
                classes) -> dict:
    """The verdict on all images and on the images of each severity level: {subset: {verdict, line, unsure, true_status,
    systematic, points: [(class, estimate, lo, hi, true share, judged by the verdict)], the last one pooled ('all pixels')}}."""
    from adele.core.review import USABLE_SHARE, class_pixel_counts, label_verdict

    subsets = {"all images": np.ones(len(labels), dtype=bool)}
    subsets.update({LEVEL_NAMES[lv]: levels == lv for lv in range(len(LEVELS)) if (levels == lv).any()})
    out = {}
    for name, idx in subsets.items():
        lab = list(labels[idx])
        v = label_verdict(lab, list(suspect[idx]), list(prediction[idx]), classes, 255)
        n_lab, n_wrong = class_pixel_counts(lab, list(labels[idx] != clean[idx]), len(classes), 255)
        n_lab, n_wrong = n_lab.sum(0), n_wrong.sum(0)
        true = np.divide(n_wrong, n_lab, out=np.full(len(classes), np.nan), where=n_lab > 0)
        s, judged = v.shares, v.judged()
        points = [(classes[c], float(s.share[c]), float(s.lo[c]), float(s.hi[c]), float(true[c]), bool(judged[c]))
                  for c in range(len(classes)) if n_lab[c]]
        points.append(("all pixels", *s.overall, float(n_wrong.sum() / n_lab.sum()), True))
        out[name] = {"images": int(idx.sum()), "verdict": v.status, "line": v.line(), "unsure": v.unsure, "points": points,
                     "true_status": "usable" if np.nanmax(true) < USABLE_SHARE else "correct",
                     "systematic": [r["name"] for r in v.systematic if r["systematic"]]}
    return out


def _mean_std(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{np.nanmean(v):.3f}" + (f" ± {np.nanstd(v, ddof=1):.3f}" if len(v) > 1 else "")


def print_review(ds: str, extras: list[dict]) -> None:
    """The review-curve table of one label set: areas and the share found after 10/20/30% of the masks, mean ± std over the draws."""
    from adele.core.review import FOUND_AT

    print(f"**{ds}**: review curves (masks in each ranking's order, most suspicious first; share of all wrong pixels found; "
          "mean ± std over the draws)\n")
    found = [f"found after {round(100 * f)}% of the masks" for f in FOUND_AT]
    print("| ranking | area, masks reviewed | area, pixels reviewed | " + " | ".join(found) + " |")
    print("|---|" + "---:|" * (2 + len(found)))
    for name in extras[0]["review"]:
        rows = [e["review"][name] for e in extras]
        keys = ["area_masks", "area_pixels"] + [f"found_{round(100 * f)}" for f in FOUND_AT]
        print(f"| {name} | " + " | ".join(_mean_std([r[k] for r in rows]) for k in keys) + " |")
    if all(np.isclose(r["area_masks"], r["area_pixels"]) for e in extras for r in e["review"].values()):
        print("\n(every mask has the same number of labelled pixels here, so both x axes give the same curve)")
    print()


def review_figure_of(ds: str, extras: list[dict], path: Path) -> Path:
    """The mean review curves over the draws of one label set: masks axis and pixels axis."""
    from adele.reporting.quality_section import AXES, review_figure

    panels = {}
    for axis, label in AXES.items():
        curves = {}
        for name in extras[0]["review"]:
            if name.startswith("random"):
                continue  # the figure draws the diagonal itself
            y = np.mean([e["review"][name][f"curve_{axis}"] for e in extras], axis=0)
            area = np.mean([e["review"][name][f"area_{axis}"] for e in extras])
            curves[f"{name}, area {area:.3f}"] = (GRID, y)
        panels[label] = curves
    return review_figure(panels, path, title=f"{ds}: wrong pixels found when reviewing the masks in ranked order "
                                             f"(mean of {len(extras)} draw{'s' if len(extras) > 1 else ''})")


def _mean(values) -> str:
    return f"{np.mean(values):.3f}" if len(values) else "-"


def print_calibration(ds: str, extras: list[dict]) -> None:
    """Estimated vs true share of wrong pixels per class and draw, on all images and per severity level."""
    print(f"**{ds}**: the verdict's estimated share of wrong pixels vs the true share (adele one run, suspect pixels at quality.tau 0.5; "
          "per class and draw; 95% bootstrap intervals over images; pooled = all labelled pixels)\n")
    print("| images | class x draw judged (of) | true share, mean | estimated, mean | mean error (est - true) | mean abs error "
          "| interval holds the truth | pooled: true / estimated | unsure | systematic classes | verdict (truth) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for subset in extras[0]["calibration"]:
        cal = [e["calibration"][subset] for e in extras if subset in e["calibration"]]
        every = [p for c in cal for p in c["points"] if p[0] != "all pixels"]
        pts = np.array([p[1:5] for p in every if p[5]], dtype=float).reshape(-1, 4)
        pooled = np.array([p[1:5] for c in cal for p in c["points"] if p[0] == "all pixels"], dtype=float)
        est, lo, hi, true = pts.T
        verdicts = ", ".join(f"{c['verdict']} ({c['true_status']})" for c in cal)
        print(f"| {subset} ({cal[0]['images']} per draw) | {len(pts)} ({len(every)}) | {_mean(true)} | {_mean(est)} | "
              + (f"{np.mean(est - true):+.3f}" if len(pts) else "-") + f" | {_mean(np.abs(est - true))} | "
              + (f"{np.mean((lo <= true) & (true <= hi)):.2f}" if len(pts) else "-")
              + f" | {np.mean(pooled[:, 3]):.3f} / {np.mean(pooled[:, 0]):.3f} | {np.mean([c['unsure'] for c in cal]):.3f} "
              f"| {np.mean([len(c['systematic']) for c in cal]):.1f} | {verdicts} |")
    print()
    for d, e in enumerate(extras):
        print(f"draw {d}, all images: {e['calibration']['all images']['line']}")
    print()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="folder for the datasets and runs (kept: a rerun trains only what is missing)")
    ap.add_argument("--datasets", nargs="+", default=["colin27", "colin27-brodmann"], choices=sorted(DATASETS))
    ap.add_argument("--draws", type=int, default=3, help="noise draws (seeds 0..N-1)")
    ap.add_argument("--folds", type=int, default=5, help="K of the K-fold out-of-sample probabilities")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2, help="trainings at once (one thread each)")
    ap.add_argument("--taus", nargs="*", type=float, default=[0.7], help="also show the one-run suspect mask at these quality.tau values")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="settings over the colin27 preset, for every run (another recipe)")
    ap.add_argument("--figure-dir", default=str(ROOT / "docs" / "figures"),
                    help="where the review-curve figure of each label set goes (review_curve_<set>.png; default: docs/figures)")
    add_result_options(ap, "label_quality, or label_quality_<datasets> for other --datasets")
    args = ap.parse_args(argv)

    from adele.core.quality import kfold_assignment

    work = Path(args.work).resolve()
    marker = work / ".bench_label_quality"  # this script's folder: it writes datasets and runs only there
    if work.is_dir() and any(work.iterdir()) and not marker.is_file():
        raise SystemExit(f"error: {work} is not empty and was not made by this benchmark; pass an empty or new folder as --work")
    work.mkdir(parents=True, exist_ok=True)
    marker.touch()
    plan = []
    for ds in args.datasets:
        for d in range(args.draws):
            base = work / f"{ds}_draw{d}"
            if not (base / "data" / "dataset.json").is_file():
                build_dataset(base / "data", d, ds)
            ids = sorted(p.stem for p in (base / "data" / "train" / "images").iterdir())
            folds = kfold_assignment(len(ids), args.folds, seed=d)
            jobs = [(base / "run", base / "data", [])]
            for f in range(args.folds):
                if not (base / "folds" / f"data{f}" / "dataset.json").is_file():
                    build_fold(base / "data", base / "folds" / f"data{f}", ids, folds == f)
                jobs.append((base / "folds" / f"fold{f}", base / "folds" / f"data{f}", ["quality.track=false"]))  # not needed there
            plan.append((ds, d, base, folds, jobs))
    all_jobs = [j for *_, jobs in plan for j in jobs]
    print(f"{len(all_jobs)} training runs ({args.jobs} at a time), {args.epochs} epochs each")
    t0 = time.perf_counter()
    run_jobs(all_jobs, args.jobs, args.epochs, recipe=tuple(args.set))
    print(f"trained in {time.perf_counter() - t0:.0f} s")

    results: dict[str, list] = {}
    extras: dict[str, list] = {}
    per_draw: dict[str, list] = {}  # the result file: every draw's figures
    for ds, d, base, folds, _ in plan:
        res, desc, extra = score_draw(base / "run", base / "folds", folds, args.folds, tuple(args.taus), image_levels(ds, d))
        (base / "scores.json").write_text(json.dumps({"results": res, "data": desc, **extra}, indent=1))
        extras.setdefault(ds, []).append(extra)
        print(f"{ds} draw {d}: {desc['images']} masks at {desc['size'][0]}x{desc['size'][1]}, {desc['noisy']} noisy, "
              f"wrong-pixel fraction median {desc['wrong_frac_median']:.3f}, max {desc['wrong_frac_max']:.3f}; "
              f"the one-run model's test mean Dice {desc['test_mean_dice']:.3f}")
        results.setdefault(ds, []).append(res)
        per_draw.setdefault(ds, []).append({"draw": d, "data": desc, "results": res, **extra})
    print(f"\nPython {platform.python_version()}, {platform.machine()}; mean ± std over {args.draws} noise draws; "
          f"{args.epochs} epochs per run; K = {args.folds}; recipe: colin27 preset" + (f" with {' '.join(args.set)}" if args.set else "") + "\n")
    cols = [("spearman", "Spearman vs wrong-pixel fraction"), ("auroc_top25", "AUROC noisiest quartile"),
            ("pixel_precision", "pixel precision"), ("pixel_recall", "pixel recall"), ("pixel_f1", "pixel F1"),
            ("pixel_ap", "pixel AP")]
    for ds, draws in results.items():
        print(f"**{ds}** (mixed severities)\n")
        print("| ranking | " + " | ".join(c[1] for c in cols) + " | training runs | wall time (s) |")
        print("|---|" + "---:|" * (len(cols) + 2))
        for name in draws[0]:
            cells = []
            for key, _ in cols:
                v = np.array([r[name][key] for r in draws], dtype=float)
                cells.append(f"{np.nanmean(v):.3f}" + (f" ± {np.nanstd(v, ddof=1):.3f}" if len(v) > 1 else ""))
            w = np.mean([r[name]["wall_s"] for r in draws])
            tr = [r[name]["tracking_s"] for r in draws if r[name]["tracking_s"] is not None]
            cells += [draws[0][name]["runs"], f"{w:.0f}" + (f" (tracking {np.mean(tr):.0f})" if tr else "")]
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()
    for ds, ex in extras.items():
        print_review(ds, ex)
        png = review_figure_of(ds, ex, Path(args.figure_dir).resolve() / f"review_curve_{ds}.png")
        print(f"figure: {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png.name}\n")
        print_calibration(ds, ex)
    default = "label_quality" + ("" if args.datasets == ["colin27", "colin27-brodmann"] else "_" + "_".join(args.datasets))
    target = result_target(args, default)
    if target:
        write_result(target[0], {"datasets": args.datasets, "draws": args.draws, "folds": args.folds, "epochs": args.epochs,
                                 "jobs": args.jobs, "taus": args.taus, "set": args.set, "levels": LEVELS, "recipe": RECIPE},
                     {"per_draw": per_draw}, command=["benchmarks/bench_label_quality.py"] + list(sys.argv[1:] if argv is None else argv),
                     out_dir=target[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
