"""Proof on real data: baseline vs ADELE on noisy labels vs baseline on clean labels.

Trains, on the embedded Colin27 data with the ``final`` noise recipe,
(a) baseline on noisy labels, (b) ADELE on noisy labels, (c) baseline on clean
labels, for several seeds, and prints a markdown table of test Dice per class
and mean (± std over seeds), plus the fraction of the noisy-to-clean gap that
ADELE closes. Each run goes through the public CLI (``adele train``).

    python benchmarks/bench_adele.py --out runs/bench_adele --seeds 0 1 2
    python benchmarks/bench_adele.py --variants adele adele_nocons --seeds 0   # ablations

Existing finished runs (metrics.json present) are reused, so the script can be
stopped and restarted.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

COMMON = ["data.size=[112,96]", "optim.name=adam", "optim.lr=0.002", "train.batch_size=2", "train.eval_every=10",
          "adele.correction.restart_from_original=true"]
VARIANTS = {
    "baseline_noisy": ["method=baseline"],
    "adele": ["method=adele", "adele.consistency.enabled=false"],
    "adele_cons": ["method=adele"],
    "adele_paper": ["method=adele", "adele.correction.restart_from_original=false", "adele.consistency.every_steps=1"],
    "adele_late": ["method=adele", "adele.consistency.enabled=false", "adele.detection.min_points=10"],
    "baseline_clean": ["method=baseline", "data.train_labels=clean"],
    "adele_nocorr": ["method=adele", "adele.correction.enabled=false"],
    "adele_every4": ["method=adele", "adele.consistency.every_steps=4"],
    "adele_cons1": ["method=adele", "adele.consistency.every_steps=1"],
}
LABELS = {"baseline_noisy": "baseline, noisy labels", "adele": "ADELE, noisy labels", "baseline_clean": "baseline, clean labels",
          "adele_cons": "ADELE + consistency (every 5th step, default)",
          "adele_cons1": "ADELE + consistency (every step, paper)", "adele_every4": "ADELE + consistency (every 4th step)", "adele_nocorr": "ADELE without correction",
          "adele_late": "ADELE, fit needs 10 points", "adele_paper": "ADELE, paper's rules unchanged"}


def run(out: Path, variant: str, seed: int, epochs: int, recipe: str, extra: list[str]) -> dict:
    run_dir = out / f"{variant}_s{seed}"
    if (run_dir / "metrics.json").exists():
        return json.loads((run_dir / "metrics.json").read_text())
    sets = COMMON + VARIANTS[variant] + [f"train.seed={seed}", f"data.noise={recipe}", f"data.noise_seed={seed}", f"train.epochs={epochs}"] + extra
    cmd = [sys.executable, "-m", "adele", "train", "--data", "colin27", "--out", str(run_dir), "--overwrite", "--set", *sets]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"  {variant} seed {seed}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return json.loads((run_dir / "metrics.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_adele"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--recipe", default="final")
    ap.add_argument("--variants", nargs="+", default=["baseline_noisy", "adele", "baseline_clean"], choices=list(VARIANTS))
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every run")
    args = ap.parse_args()
    results = {v: [run(args.out, v, s, args.epochs, args.recipe, args.set) for s in args.seeds] for v in args.variants}
    classes = results[args.variants[0]][0]["classes"][1:]
    print(f"\nTest Dice on the embedded Colin27 data, noise recipe `{args.recipe}`, {args.epochs} epochs, seeds {args.seeds} (mean ± std)\n")
    print("| class | " + " | ".join(LABELS.get(v, v) for v in args.variants) + " |")
    print("|---|" + "---|" * len(args.variants))

    def cell(vals):
        vals = np.array([np.nan if v is None else v for v in vals], dtype=float)
        return f"{np.nanmean(vals):.3f} ± {np.nanstd(vals):.3f}"

    for c in classes:
        print(f"| {c} | " + " | ".join(cell([r["test"]["dice"][c] for r in results[v]]) for v in args.variants) + " |")
    means = {v: [r["test"]["mean_dice"] for r in results[v]] for v in args.variants}
    print("| **mean** | " + " | ".join(f"**{cell(means[v])}**" for v in args.variants) + " |")
    print(f"\nPer seed {args.seeds}: " + "; ".join(f"{v} " + ", ".join(f"{x:.3f}" for x in means[v]) for v in args.variants))
    first = args.variants[0]
    for v in args.variants[1:]:
        d = 100 * (np.array(means[v]) - np.array(means[first]))
        print(f"{v} - {first}, paired by seed: " + ", ".join(f"{x:+.1f}" for x in d) + f" points (mean {d.mean():+.1f}, std {d.std():.1f})")
    if {"baseline_noisy", "baseline_clean"} <= set(args.variants):
        noisy, clean = np.mean(means["baseline_noisy"]), np.mean(means["baseline_clean"])
        gap = clean - noisy
        for v in (v for v in args.variants if v.startswith("adele")):
            ad = np.mean(means[v])
            print(f"\n{v} - noisy baseline: {100 * (ad - noisy):+.1f} Dice points; gap closed: {100 * (ad - noisy) / gap:.0f}% of {100 * gap:.1f} points")
    for v in args.variants:
        if v.startswith("adele"):
            rounds = [r.get("adele", {}).get("rounds", []) for r in results[v]]
            agree = [(rr[0]["agreement_before"], rr[-1]["agreement_after"]) for rr in rounds if rr and "agreement_after" in rr[-1]]
            prec = [np.nanmean([x["precision"] for x in rr if x.get("precision") is not None]) for rr in rounds if rr]
            if agree:
                a = np.array(agree)
                print(f"{v}: training-label Dice vs clean {a[:, 0].mean():.3f} -> {a[:, 1].mean():.3f}; mean correction precision {np.nanmean(prec):.3f}; "
                      f"rounds per run {np.mean([len(rr) for rr in rounds]):.1f}")


if __name__ == "__main__":
    main()
