"""How much can one correction round from a trained model fix? (diagnosis for ADELE's precision)

Takes a finished run whose training set has clean labels (e.g. a noisy-label baseline from
bench_adele.py), predicts its training images in eval mode, and applies the correction rule
once to the original noisy labels with every class flagged, for several thresholds tau.
Prints the model's own Dice with the clean labels, and per tau the pixels changed, their
precision and the corrected labels' Dice with the clean ones.

    python benchmarks/bench_correction_ceiling.py runs/bench_adele/baseline_noisy_s0   # -> correction_ceiling.json

Writes docs/benchmarks/correction_ceiling.json (``--result NAME`` for another run, ``--result-dir DIR``): the
settings (the run's method, data, noise, seed and epochs) and the printed figures, per tau, unrounded. The stored
command shows RUN in place of the run folder when it was given as an absolute path (no machine's paths in the file);
a relative path is kept as given.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adele.config import load_config  # noqa: E402
from adele.core import change_precision, correct_labels  # noqa: E402
from adele.probabilities import multiscale_probs  # noqa: E402
from adele.engine.trainer import load_run_data  # noqa: E402
from adele.models import build_model_from_config  # noqa: E402
from adele.noise import noise_stats  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--taus", type=float, nargs="+", default=[0.6, 0.7, 0.8, 0.9])
    add_result_options(ap, "correction_ceiling")
    args = ap.parse_args()
    cfg = load_config(args.run / "config.yaml")
    data = load_run_data(cfg)
    tr, C = data.train, data.source.num_classes
    if tr.clean is None:
        sys.exit(f"error: {args.run}: its training set has no clean labels; use a run trained with data.noise or labels_clean")
    state = torch.load(args.run / "model.pt", map_location="cpu", weights_only=True)
    model = build_model_from_config(cfg.model, tr.in_channels, C)
    model.load_state_dict(state["model"])
    images = torch.stack(list(tr.images))
    probs = torch.cat([multiscale_probs(model, images[i : i + 8]) for i in range(0, len(images), 8)])
    conf, pred = probs.max(1)
    pred, conf = pred.numpy().astype(np.uint8), conf.numpy()
    noisy, clean = np.stack(tr.original), np.stack(tr.clean)
    dice = lambda x: noise_stats(clean, x, C, data.source.ignore_index)["fg_dice"]  # noqa: E731
    model_dice, noisy_dice = dice(pred), dice(noisy)
    print(f"\n{args.run}: foreground Dice with the clean training labels: model prediction {model_dice:.3f}, noisy labels {noisy_dice:.3f}\n")
    print("| tau | pixels changed | precision | corrected labels' Dice with clean |")
    print("|---:|---:|---:|---:|")
    rows = []
    for tau in args.taus:
        res = correct_labels(noisy, pred, conf, np.ones(C, bool), tau, tau)
        prec = change_precision(noisy, res.labels, clean, C, data.source.ignore_index)
        corrected = dice(res.labels)
        print(f"| {tau} | {int(res.changed.sum())} | {prec.overall:.3f} | {corrected:.3f} |")
        rows.append({"tau": tau, "pixels_changed": int(res.changed.sum()), "precision": prec.overall,
                     "corrected_dice_with_clean": corrected})
    target = result_target(args, "correction_ceiling")
    if target:
        run_arg = "RUN" if args.run.is_absolute() else str(args.run)
        command = [sys.argv[0]] + [run_arg if Path(a) == args.run else a for a in sys.argv[1:]]
        data_path = Path(str(cfg.data.path))
        data_name = data_path.name if data_path.is_absolute() else str(data_path)  # a named set, or a folder's name only
        write_result(target[0], {"run": run_arg, "run_name": args.run.name, "method": cfg.method, "data": data_name,
                                 "noise": cfg.data.noise, "noise_seed": cfg.data.noise_seed, "seed": cfg.train.seed,
                                 "epochs": cfg.train.epochs, "taus": args.taus, "training_images": len(images)},
                     {"model_prediction_dice_with_clean": model_dice, "noisy_labels_dice_with_clean": noisy_dice, "per_tau": rows},
                     command=command, out_dir=target[1])


if __name__ == "__main__":
    main()
