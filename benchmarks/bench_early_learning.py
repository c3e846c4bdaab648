"""Early learning vs memorization of a baseline trained on noisy labels, epoch by epoch.

After every epoch, predicts the training slices (eval mode, averaged with the
horizontal flip) and prints the mean foreground Dice of those predictions with
the clean training labels and with the noisy ones it is trained on, plus the
test Dice. Early learning shows as predictions closer to the clean labels than
to the noisy ones; memorization as agreement with the noisy labels rising
towards 1 while agreement with the clean ones falls.

    python benchmarks/bench_early_learning.py --out runs/early --epochs 50
    python benchmarks/bench_early_learning.py --out runs/early100 --epochs 100 --every 5
    python benchmarks/bench_early_learning.py --set train.loss=ce_dice optim.schedule=cosine
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adele.config import load_config  # noqa: E402
from adele.engine.adele import predict_probs  # noqa: E402
from adele.engine.trainer import Trainer, label_agreement  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "colin27.yaml"


class EarlyLearningTrainer(Trainer):
    every = 1

    def write_logs(self, row: dict) -> None:
        super().write_logs(row)
        if row["epoch"] % self.every and row["epoch"] != self.cfg.train.epochs:
            return
        tr = self.data.train
        preds = []
        for s in range(0, len(tr), 8):
            with torch.no_grad():  # eval-mode softmax averaged with the horizontal flip, as correction predicts
                probs = predict_probs(self.model, torch.stack(tr.images[s : s + 8]).to(self.device), hflip=True)
            preds += list(probs.argmax(1).cpu().numpy().astype(np.uint8))
        clean = label_agreement(preds, tr.clean, self.num_classes, self.ignore_index, self.classes)["mean_dice"]
        noisy = label_agreement(preds, tr.original, self.num_classes, self.ignore_index, self.classes)["mean_dice"]
        test = self.evaluate(self.data.test)["mean_dice"]
        print(f"| {row['epoch']} | {test:.3f} | {clean:.3f} | {noisy:.3f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/early_learning"))
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--every", type=int, default=5, help="print every N epochs (and the last)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. train.loss=ce_dice")
    args = ap.parse_args()
    cfg = load_config(CONFIG, [f"train.epochs={args.epochs}", f"train.seed={args.seed}", f"data.noise_seed={args.seed}",
                               "train.eval_every=100000", "method=baseline"] + args.set)
    tr = EarlyLearningTrainer(cfg, args.out, log=lambda m: None)
    tr.every = args.every
    tr.prepare_run_dir(resume=False, overwrite=True)
    noisy_vs_clean = label_agreement(tr.data.train.original, tr.data.train.clean, tr.num_classes, tr.ignore_index, tr.classes)["mean_dice"]
    print(f"\nBaseline on noisy labels (`{cfg.data.noise}`, seed {args.seed}), overrides {args.set or 'none'}; "
          f"noisy training labels' mean Dice with clean: {noisy_vs_clean:.3f}\n")
    print("| epoch | test Dice | train prediction vs clean labels | train prediction vs noisy labels |")
    print("|---:|---:|---:|---:|")
    tr.fit()


if __name__ == "__main__":
    main()
