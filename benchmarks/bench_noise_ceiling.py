"""How much of the clean labels can any method recover from the noise's consensus?

ADELE corrects labels from what the network learned early, i.e. from the
*consensus* of the noisy labels across similar images. This script measures
the best that consensus can give on the embedded Colin27 training slices:
it draws K independent realizations of a noise recipe for every slice and
prints the foreground Dice with the clean labels of

* one realization (what a training run sees),
* the per-pixel majority vote of the K realizations,
* the majority vote after Gaussian smoothing of the vote counts (sigma in
  pixels), a stand-in for a network whose outputs vary smoothly in space.

With ``--train`` it also writes the smoothed consensus as the training labels
of a generic-format dataset (clean val/test) and trains a baseline on it
through the public CLI: the test Dice a perfect label corrector would reach
with the same model and schedule.

    python benchmarks/bench_noise_ceiling.py --recipe final --k 21
    python benchmarks/bench_noise_ceiling.py --train --out runs/noise_ceiling
    python benchmarks/bench_noise_ceiling.py --train --out runs/noise_ceiling_b --noise-seed 100
    python benchmarks/bench_noise_ceiling.py --train --out runs/noise_ceiling3 --seeds 0 1 2 --gap 0.622 0.790

A training run whose folder already holds metrics.json is reused, not retrained.

Writes docs/benchmarks/noise_ceiling.json, with ``--train`` docs/benchmarks/noise_ceiling_train.json (``--result NAME``
for another configuration, ``--result-dir DIR``): the settings and the printed figures unrounded (the Dice of one
realization and of each consensus; with ``--train`` each seed's test Dice, their mean and std, and the share of the gap).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adele.data.colin27 import export_colin27, load_colin27  # noqa: E402
from adele.data.io import write_array  # noqa: E402
from adele.noise import noise_dataset, noise_stats  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import PRESET as CONFIG, consensus  # noqa: E402  (the recipe of the AAL benchmark)
from bench_common import add_result_options, result_target, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="final")
    ap.add_argument("--k", type=int, default=21, help="independent noise realizations per slice")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--train", action="store_true", help="train a baseline on the smoothed consensus")
    ap.add_argument("--sigma", type=float, default=2.0, help="smoothing of the consensus that --train uses")
    ap.add_argument("--out", type=Path, default=Path("runs/noise_ceiling"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (one run each; mean +- std)")
    ap.add_argument("--noise-seed", type=int, default=1000, help="realization k uses noise seed NOISE_SEED + k")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for the training run")
    ap.add_argument("--gap", type=float, nargs=2, metavar=("NOISY", "CLEAN"),
                    help="test Dice of the noisy- and clean-label baselines (bench_adele.py, same settings): "
                         "also print the share of that gap the consensus run closes")
    add_result_options(ap, "noise_ceiling, or noise_ceiling_train with --train")
    args = ap.parse_args()

    src = load_colin27()
    tr, C = src.splits["train"], src.num_classes
    votes = np.zeros((C,) + tr.labels.shape, np.int32)
    first = None
    for k in range(args.k):
        noisy = np.stack(noise_dataset(tr.labels, args.recipe, seed=args.noise_seed + k, num_classes=C)[0])
        first = noisy if first is None else first
        for c in range(C):
            votes[c] += noisy == c
    dice = lambda x: noise_stats(tr.labels, x, C, src.ignore_index)["fg_dice"]  # noqa: E731
    print(f"\nRecipe `{args.recipe}` on the {len(tr.labels)} Colin27 training slices, {args.k} realizations each "
          f"(noise seeds {args.noise_seed}-{args.noise_seed + args.k - 1}): "
          f"foreground Dice with the clean labels\n")
    print("| labels | Dice with clean |\n|---|---:|")
    one = dice(first)
    print(f"| one realization | {one:.3f} |")
    cons = {s: consensus(votes, s) for s in set(args.sigmas) | ({args.sigma} if args.train else set())}
    by_sigma = []
    for s in args.sigmas:
        name = "majority vote" if s == 0 else f"majority vote, smoothed sigma={s:g} px"
        by_sigma.append({"sigma": s, "dice_with_clean": dice(cons[s])})
        print(f"| {name} | {by_sigma[-1]['dice_with_clean']:.3f} |")
    settings = {"recipe": args.recipe, "k": args.k, "sigmas": args.sigmas, "noise_seed": args.noise_seed,
                "training_slices": len(tr.labels), "train": args.train}
    results = {"one_realization_dice_with_clean": one, "consensus": by_sigma}
    target = result_target(args, "noise_ceiling_train" if args.train else "noise_ceiling")

    if not args.train:
        if target:
            write_result(target[0], settings, results, out_dir=target[1])
        return
    cons, cons_dice = cons[args.sigma], dice(cons[args.sigma])
    data = args.out / "data"
    export_colin27(data, overwrite=True)
    for i, sid in enumerate(tr.ids):
        write_array(data / "train" / "labels_clean" / f"{sid}.png", tr.labels[i])
        write_array(data / "train" / "labels" / f"{sid}.png", cons[i])
    scores, per_seed = [], []
    for seed in args.seeds:
        run_dir = args.out / f"consensus_baseline_s{seed}"
        sets = ["method=baseline"] + [f"train.seed={seed}", f"train.epochs={args.epochs}", "data.noise=null"] + args.set
        cmd = [sys.executable, "-m", "adele", "train", "--config", str(CONFIG), "--data", str(data), "--out", str(run_dir),
               "--overwrite", "--set", *sets]
        t = time.perf_counter()
        cached = (run_dir / "metrics.json").is_file()
        if not cached:
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        scores.append(json.loads((run_dir / "metrics.json").read_text())["test"]["mean_dice"])
        wall = time.perf_counter() - t
        took = "reused" if cached else f"{wall:.0f} s"
        per_seed.append({"seed": seed, "test_dice": scores[-1], "wall_s": None if cached else wall, "reused": cached})
        print(f"\nBaseline trained {args.epochs} epochs on the consensus (sigma={args.sigma:g}, Dice with clean "
              f"{cons_dice:.3f}), seed {seed}: test Dice {scores[-1]:.3f} ({took})", flush=True)
    mean = float(np.mean(scores))
    std = float(np.std(scores, ddof=1)) if len(scores) > 1 else float("nan")
    if len(scores) > 1:
        print(f"\nMean over seeds {args.seeds}: test Dice {mean:.3f} +- {std:.3f}")
    share = None
    if args.gap:
        noisy, clean = args.gap
        share = 100 * (mean - noisy) / (clean - noisy)
        print(f"Against noisy {noisy:.3f} and clean {clean:.3f}: {share:.0f}% of the gap closed")
    if target:
        settings.update(sigma=args.sigma, seeds=args.seeds, epochs=args.epochs, set=args.set, gap=args.gap, config="configs/colin27.yaml")
        results.update(consensus_trained={"sigma": args.sigma, "dice_with_clean": cons_dice}, per_seed=per_seed, test_dice_mean=mean,
                       test_dice_std=std, gap_closed_percent=share)
        write_result(target[0], settings, results, out_dir=target[1])


if __name__ == "__main__":
    main()
