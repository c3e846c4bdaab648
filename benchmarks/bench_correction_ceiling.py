"""How much can one correction round from a trained model fix? (diagnosis for ADELE's precision)

Takes a finished run whose training set has clean labels (e.g. a noisy-label baseline from
bench_adele.py), predicts its training images in eval mode, and applies the correction rule
once to the original noisy labels with every class flagged, for several thresholds tau.
Prints the model's own Dice with the clean labels, and per tau the pixels changed, their
precision and the corrected labels' Dice with the clean ones.

    python benchmarks/bench_correction_ceiling.py runs/bench_adele/baseline_noisy_s0
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--taus", type=float, nargs="+", default=[0.6, 0.7, 0.8, 0.9])
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
    print(f"\n{args.run}: foreground Dice with the clean training labels: model prediction {dice(pred):.3f}, noisy labels {dice(noisy):.3f}\n")
    print("| tau | pixels changed | precision | corrected labels' Dice with clean |")
    print("|---:|---:|---:|---:|")
    for tau in args.taus:
        res = correct_labels(noisy, pred, conf, np.ones(C, bool), tau, tau)
        prec = change_precision(noisy, res.labels, clean, C, data.source.ignore_index)
        print(f"| {tau} | {int(res.changed.sum())} | {prec.overall:.3f} | {dice(res.labels):.3f} |")


if __name__ == "__main__":
    main()
