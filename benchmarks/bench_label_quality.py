"""Does the label-quality score rank the noisiest training masks first? Prints a markdown table.

Usage::

    python benchmarks/bench_label_quality.py                 # build data, train a baseline (~30 epochs), score
    python benchmarks/bench_label_quality.py --run RUN       # score an existing run whose training set has clean labels

Data: the embedded Colin27 training slices (72), each given its own noise
severity (clean, mild, the paper's 'final', harsher, harsher + missing and
confused objects; levels assigned at random, seeded) and written as a dataset
folder in the generic format with train/labels_clean. A baseline is trained on
the noisy labels at 112x96 (``adele train``). Then, at the training
resolution and with the same model probabilities (eval mode):

* ours: ``adele.core.quality.label_quality_scores`` (score; and its ``disagree_frac`` alone)
* cleanlab: ``cleanlab.segmentation.rank.get_label_quality_scores`` (softmin; optional extra: ``pip install cleanlab``)

against the true noise of each mask: fraction of labelled pixels whose noisy
label differs from the clean one, and 1 - foreground Dice(noisy, clean).
Spearman correlations are of the suspicion (lower score = more suspicious)
with the true noise; AUROC is for finding the noisiest quartile, and for
telling noisy masks from the untouched ones.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adele.data import load_colin27, write_array, write_dataset_json  # noqa: E402
from adele.noise import apply_recipe, parse_recipe  # noqa: E402
from adele.reporting.runs import load_run  # noqa: E402

#: severity ladder: level -> recipe (None = clean)
LEVELS = (None, "final:iterations=1-1", "final", "final:target_area=1000", "final:target_area=1000+missing:p=0.3+confusion:p=0.3")
TRAIN = ["data.size=[112, 96]", "optim.name=adam", "optim.lr=0.002", "train.eval_every=5", "train.batch_size=5"]


def build_dataset(root: Path, seed: int) -> np.ndarray:
    """Write the mixed-noise dataset; returns the level of each training image."""
    src = load_colin27()
    c = src.num_classes
    tr = src.splits["train"]
    for recipe in LEVELS:
        if recipe is not None:
            parse_recipe(recipe)
    levels = np.random.default_rng(seed).permutation(np.arange(len(tr)) % len(LEVELS))
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
    write_dataset_json(root, "colin27-mixed-noise", src.classes, 255)
    return levels


def fg_dice(a: np.ndarray, b: np.ndarray, c: int) -> float:
    """Mean over foreground classes present in either map of Dice(a, b)."""
    d = [2 * np.sum((a == k) & (b == k)) / (np.sum(a == k) + np.sum(b == k)) for k in range(1, c) if (a == k).any() or (b == k).any()]
    return float(np.mean(d)) if d else 1.0


def auroc(suspicion: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive image is more suspicious than a negative one (ties count 1/2)."""
    r = rankdata(suspicion)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def score_run(run: Path) -> tuple[dict, str]:
    """{ranking: (spearman wrong, spearman dice, auroc quartile, auroc noisy, seconds)} and a one-line description."""
    from adele.core.quality import label_quality_scores
    from adele.engine import load_run_data
    from adele.config import saved_config
    from adele.prediction import load_run_model, predict_split

    lm = load_run_model(run, "auto")
    data = load_run_data(saved_config(run / "config.yaml"))
    tr, c = data.train, len(lm.classes)
    if tr.clean is None:
        raise SystemExit(f"error: {run}: the training set has no clean labels; nothing to compare with")
    labels, clean = np.stack(tr.original), np.stack(tr.clean)
    valid = (labels != 255) & (clean != 255)
    wrong = np.array([(labels[i] != clean[i])[valid[i]].mean() for i in range(len(tr))])
    dice_err = np.array([1 - fg_dice(labels[i], clean[i], c) for i in range(len(tr))])
    probs = predict_split(lm, tr).astype(np.float32)

    suspicion: dict[str, tuple[np.ndarray, float]] = {}
    t0 = time.perf_counter()
    scores, disagree, _ = label_quality_scores(labels, probs, 255)
    dt = time.perf_counter() - t0
    suspicion["adele score (`label_quality_scores`)"] = (-scores, dt)
    suspicion["adele disagree_frac alone"] = (disagree, dt)
    try:
        from cleanlab.segmentation.rank import get_label_quality_scores
    except ImportError:
        print("cleanlab is not installed (pip install cleanlab); its rows are left out", file=sys.stderr)
    else:
        t0 = time.perf_counter()
        cl, _ = get_label_quality_scores(labels.astype(np.int64), probs, method="softmin", verbose=False)
        suspicion["cleanlab softmin (`get_label_quality_scores`)"] = (-np.asarray(cl), time.perf_counter() - t0)
    top = wrong >= np.quantile(wrong, 0.75)
    noisy = wrong > 0
    out = {}
    for name, (susp, dt) in suspicion.items():
        out[name] = (spearmanr(susp, wrong)[0], spearmanr(susp, dice_err)[0], auroc(susp, top),
                     auroc(susp, noisy) if 0 < noisy.sum() < len(noisy) else float("nan"), dt)
    test = (load_run(run).metrics or {}).get("test", {}).get("mean_dice")
    desc = (f"{run}: {len(tr)} training masks at {labels.shape[1]}x{labels.shape[2]}, {int(noisy.sum())} noisy "
            f"(wrong-pixel fraction {wrong.min():.3f}..{wrong.max():.3f}, median {np.median(wrong):.3f}); "
            f"model test mean Dice {'-' if test is None else f'{test:.3f}'}")
    return out, desc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs="+", help="existing run folder(s) whose training set has clean labels; default: build data and train")
    ap.add_argument("--work", help="folder for the dataset and the run (default: a temporary folder)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    runs = [Path(r) for r in args.run or []]
    if not runs:
        work = Path(args.work or tempfile.mkdtemp(prefix="bench-lq-"))
        build_dataset(work / "data", args.seed)
        from adele.cli import main as adele

        t0 = time.perf_counter()
        rc = adele(["train", "--data", str(work / "data"), "--out", str(work / "run"), "--epochs", str(args.epochs),
                    "--seed", str(args.seed), "--overwrite", "--set", *TRAIN])
        if rc:
            return rc
        print(f"trained {work / 'run'} in {time.perf_counter() - t0:.0f} s")
        runs = [work / "run"]
    results = []
    for run in runs:
        res, desc = score_run(run)
        results.append(res)
        print(desc)
    print(f"\nPython {platform.python_version()}, {platform.machine()}; "
          + ("one run" if len(runs) == 1 else f"mean ± std over {len(runs)} runs") + "\n")
    print("| ranking | Spearman vs wrong-pixel fraction | Spearman vs 1 - fg Dice | AUROC noisiest quartile | AUROC noisy vs clean | time (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in results[0]:
        vals = np.array([r[name] for r in results], dtype=float)
        cells = []
        for k in range(vals.shape[1]):
            col = vals[:, k]
            if np.isnan(col).all():
                cells.append("-")
            elif len(col) == 1 or k == 4:
                cells.append(f"{np.nanmean(col):.{2 if k == 4 else 3}f}")
            else:
                cells.append(f"{np.mean(col):.3f} ± {np.std(col, ddof=1):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
