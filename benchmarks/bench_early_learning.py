"""Early learning vs memorization of a baseline trained on noisy labels, epoch by epoch.

After every epoch, predicts the training slices (eval mode, averaged with the
horizontal flip) and prints the mean foreground Dice of those predictions with
the clean training labels and with the noisy ones it is trained on, plus the
test Dice. Early learning shows as predictions closer to the clean labels than
to the noisy ones; memorization as agreement with the noisy labels rising
towards 1 while agreement with the clean ones falls.

The last columns apply ADELE's correction rule once to the original noisy
labels with those predictions, every class flagged, at each ``--taus``
confidence threshold, and print the corrected labels' Dice with the clean
ones: the best a single correction round could reach if it were timed at
that epoch by an oracle.

    python benchmarks/bench_early_learning.py --out runs/early --epochs 50
    python benchmarks/bench_early_learning.py --out runs/early100 --epochs 100 --every 5
    python benchmarks/bench_early_learning.py --set train.loss=ce_dice optim.schedule=cosine
    python benchmarks/bench_early_learning.py --smoke --out runs/early_smoke   # seconds: 2 epochs at 56x48

A run writes docs/benchmarks/early_learning.json (``--result NAME`` for another configuration, ``--result-dir DIR``):
the settings, the noisy labels' Dice with clean and every printed epoch's row, unrounded; ``--smoke`` writes only with
``--result-dir``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adele.plan import planned_config  # noqa: E402
from adele.core import correct_labels  # noqa: E402
from adele.probabilities import multiscale_probs  # noqa: E402
from adele.engine.trainer import Trainer  # noqa: E402
from adele.metrics import label_agreement  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "colin27.yaml"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402

#: --smoke: 2 epochs, every epoch printed, at a small size
SMOKE = ["data.size=[56,48]"]


class EarlyLearningTrainer(Trainer):
    every = 1
    taus: tuple[float, ...] = ()
    rows: list[dict] = []

    def write_logs(self, row: dict) -> None:
        super().write_logs(row)
        if row["epoch"] % self.every and row["epoch"] != self.cfg.train.epochs:
            return
        tr = self.data.train
        preds, confs = [], []
        for s in range(0, len(tr), 8):
            with torch.no_grad():  # eval-mode softmax averaged with the horizontal flip, as correction predicts
                probs = multiscale_probs(self.model, torch.stack(list(tr.images[s : s + 8])).to(self.device), hflip=True)
            conf, pred = probs.max(1)
            preds += list(pred.cpu().numpy().astype(np.uint8))
            confs += list(conf.cpu().numpy())
        agree = lambda labels: label_agreement(labels, tr.clean, self.num_classes, self.ignore_index, self.classes)["mean_dice"]  # noqa: E731
        clean = agree(preds)
        noisy = label_agreement(preds, tr.original, self.num_classes, self.ignore_index, self.classes)["mean_dice"]
        flagged = np.ones(self.num_classes, dtype=bool)
        corrected = [agree([correct_labels(o, p, c, flagged, tau, tau, ignore_index=self.ignore_index).labels
                            for o, p, c in zip(tr.original, preds, confs)]) for tau in self.taus]
        test = self.evaluate(self.data.test)["mean_dice"]
        cells = " | ".join(f"{x:.3f}" for x in [test, clean, noisy] + corrected)
        print(f"| {row['epoch']} | {cells} |", flush=True)
        self.rows.append({"epoch": row["epoch"], "test_dice": test, "train_prediction_vs_clean": clean,
                          "train_prediction_vs_noisy": noisy, "corrected_vs_clean": dict(zip(map(str, self.taus), corrected))})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/early_learning"))
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--every", type=int, default=5, help="print every N epochs (and the last)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. train.loss=ce_dice")
    ap.add_argument("--taus", type=float, nargs="*", default=[0.5, 0.7, 0.9],
                    help="confidence thresholds of the one-round correction columns (none: no such columns)")
    ap.add_argument("--smoke", action="store_true", help="2 epochs, every one printed, at 56x48: the code path in seconds")
    add_result_options(ap, "early_learning")
    args = ap.parse_args()
    if args.smoke:
        args.epochs, args.every, args.set = 2, 1, args.set + SMOKE
    cfg = planned_config(CONFIG, [f"train.epochs={args.epochs}", f"train.seed={args.seed}", f"data.noise_seed={args.seed}",
                               "train.eval_every=100000", "method=baseline"] + args.set, device="cpu")[0]
    tr = EarlyLearningTrainer(cfg, args.out, log=lambda m: None)
    tr.every = args.every
    tr.taus = tuple(args.taus)
    tr.rows = []
    tr.prepare_run_dir(resume=False, overwrite=True)
    noisy_vs_clean = label_agreement(tr.data.train.original, tr.data.train.clean, tr.num_classes, tr.ignore_index, tr.classes)["mean_dice"]
    print(f"\nBaseline on noisy labels (`{cfg.data.noise}`, seed {args.seed}), overrides {args.set or 'none'}; "
          f"noisy training labels' mean Dice with clean: {noisy_vs_clean:.3f}\n")
    extra = "".join(f" labels corrected at tau {t:g} vs clean |" for t in args.taus)
    print("| epoch | test Dice | train prediction vs clean labels | train prediction vs noisy labels |" + extra)
    print("|---:|---:|---:|---:|" + "---:|" * len(args.taus))
    tr.fit()
    target = result_target(args, "early_learning", args.smoke)
    if target:
        write_result(target[0], {"epochs": args.epochs, "every": args.every, "seed": args.seed, "set": args.set, "taus": args.taus,
                                 "smoke": args.smoke, "noise": cfg.data.noise, "config": "configs/colin27.yaml + the plan"},
                     {"noisy_labels_vs_clean": noisy_vs_clean, "epochs": tr.rows}, out_dir=target[1])


if __name__ == "__main__":
    main()
