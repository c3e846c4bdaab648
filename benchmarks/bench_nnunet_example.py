"""The nnU-Net workflow end to end on the embedded volumes: plan, train each fold, ensemble, evaluate in native space.

Through the public CLI only, as a user of nnU-Net would:

1. ``adele data export colin27 SRC --volumes --layout nnunet``: an nnU-Net raw dataset built from the
   embedded Colin27 volumes (15 training cases in imagesTr/labelsTr, 3 test cases in imagesTs/labelsTs);
2. for each fold K: ``adele data prepare volumes SRC PREP_K --fold K`` (nnU-Net's 5 folds, splits_final.json),
   ``adele plan PREP_K`` and ``adele train --data PREP_K`` with the planned recipe (no config), clean labels;
3. ``adele predict RUN_K --input SRC/imagesTs`` per fold, and once with every fold's run (their probabilities
   averaged: nnU-Net's ensembling), each written on the test volumes' own grid;
4. ``adele evaluate PRED SRC/labelsTs``: Dice per class against the native-space labels, per fold and for the ensemble.

Prints one table (test mean Dice on labelsTs per fold and for the ensemble, with each fold's validation
Dice and wall time).

    python benchmarks/bench_nnunet_example.py --out runs/nnunet_example              # 5 folds, planned recipe
    python benchmarks/bench_nnunet_example.py --out runs/nnunet_example --folds 0 1  # fewer folds
    python benchmarks/bench_nnunet_example.py --smoke                                # seconds: same path, tiny settings

A run writes docs/benchmarks/nnunet_example.json (``--result NAME`` for another configuration, ``--result-dir DIR``):
the settings and the printed figures unrounded (per fold its val and test Dice and wall time, the ensemble's test Dice
and its Dice per class); ``--smoke`` writes only with ``--result-dir``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402

SMOKE = ["train.epochs=2", "train.steps_per_epoch=5", "data.size=[28,24]", "model.width=4", "model.depth=2"]


def adele(*args: str, quiet: bool = True) -> str:
    res = subprocess.run([sys.executable, "-m", "adele", *args], check=True, capture_output=True, text=True)
    return res.stdout if quiet else print(res.stdout, end="") or res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], help="extra training overrides (the plan is used otherwise)")
    ap.add_argument("--smoke", action="store_true", help="2 folds, 2 epochs of 5 steps at 28x24: the code path in seconds")
    add_result_options(ap, "nnunet_example")
    args = ap.parse_args()
    folds = args.folds[:2] if args.smoke else args.folds
    extra = args.set + (SMOKE if args.smoke else [])
    out = args.out or Path(tempfile.mkdtemp(prefix="nnunet_example_"))
    src = out / "Dataset027_Colin27"
    if not (src / "dataset.json").is_file():
        adele("data", "export", "colin27", str(src), "--volumes", "--layout", "nnunet")
    rows, runs = [], []
    for k in folds:
        prep, run = out / f"prep_fold{k}", out / f"run_fold{k}"
        if not (prep / "volumes.json").is_file():
            adele("data", "prepare", "volumes", str(src), str(prep), "--fold", str(k))
        if k == folds[0]:
            print(f"plan of fold {k} (`adele plan {prep.name}`):\n" + adele("plan", str(prep)))
        t = time.perf_counter()
        if not (run / "metrics.json").is_file():
            adele("train", "--data", str(prep), "--out", str(run), "--overwrite", "--device", "cpu", "--seed", str(args.seed),
                  *(["--set", *extra] if extra else []))
        wall = time.perf_counter() - t
        metrics = json.loads((run / "metrics.json").read_text())
        pred = out / f"pred_fold{k}"
        adele("predict", str(run), "--input", str(src / "imagesTs"), "--out", str(pred), "--overwrite", "--device", "cpu")
        adele("evaluate", str(pred), str(src / "labelsTs"), "--overwrite")
        summary = json.loads((pred / "summary.json").read_text())
        rows.append((f"fold {k}", metrics["val"]["mean_dice"], summary["foreground_mean_present"]["Dice"], wall))
        runs.append(run)
    pred = out / "pred_ensemble"
    adele("predict", *map(str, runs), "--input", str(src / "imagesTs"), "--out", str(pred), "--overwrite", "--device", "cpu")
    adele("evaluate", str(pred), str(src / "labelsTs"), "--overwrite")
    ens = json.loads((pred / "summary.json").read_text())
    rows.append((f"ensemble of {len(runs)} folds", None, ens["foreground_mean_present"]["Dice"], None))
    print(f"\n{src.name}: 15 training cases (5 folds), test = imagesTs vs labelsTs (3 cases), native space; "
          f"recipe: planned{' + ' + ' '.join(extra) if extra else ''}\n")
    print("| model | val mean Dice (slices) | test mean Dice (labelsTs, native) | training wall time |\n|---|---:|---:|---:|")
    for name, val, test, wall in rows:
        print(f"| {name} | {'-' if val is None else f'{val:.3f}'} | {test:.3f} | {'-' if wall is None else f'{wall:.0f} s'} |")
    names = ens.get("class_names", {})
    print("\nper class, ensemble: " + ", ".join(f"{names.get(c, c)} {v['Dice']:.3f}" for c, v in ens["mean_present"].items()))
    print(f"\nwork folder: {out.name}")
    target = result_target(args, "nnunet_example", args.smoke)
    if target:
        write_result(target[0], {"folds": folds, "seed": args.seed, "set": args.set, "smoke": args.smoke, "overrides": extra,
                                 "recipe": "planned", "dataset": src.name, "test_cases": ens.get("num_cases")},
                     {"per_fold": [{"fold": k, "val_mean_dice": val, "test_mean_dice": test, "wall_s": wall}
                                   for k, (_, val, test, wall) in zip(folds, rows)],
                      "ensemble": {"folds": len(runs), "test_mean_dice": rows[-1][2],
                                   "per_class": {names.get(c, c): v["Dice"] for c, v in ens["mean_present"].items()}}},
                     out_dir=target[1])


if __name__ == "__main__":
    main()
