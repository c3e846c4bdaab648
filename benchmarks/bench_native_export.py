"""Labels brought back to the native grid: nearest-neighbour vs one-hot bilinear + argmax (issue: native export).

A run trained at a lower resolution exports its (corrected) labels at each source image's own size.
This measures what the upsampling alone costs: the native clean labels of an embedded set are
downsampled to a training size as the trainer does (nearest), brought back to the native grid
either by nearest-neighbour or through their one-hot maps (bilinear, argmax), and compared with
the native labels (foreground mean Dice over the classes present, one confusion matrix).

    python benchmarks/bench_native_export.py --data colin27 colin27-structures --sizes 56x48 72x56   # -> native_export.json
    python benchmarks/bench_native_export.py --smoke

A run writes docs/benchmarks/native_export.json (``--result NAME``, ``--result-dir DIR``): the settings and, per
dataset and training size, both Dice values and the gain as printed (unrounded); ``--smoke`` writes only with ``--result-dir``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adele.data import open_source  # noqa: E402
from adele.data.dataset import resize_label, smooth_resize_label  # noqa: E402
from adele.metrics import mean_dice  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["colin27", "colin27-structures"])
    ap.add_argument("--sizes", nargs="+", default=["56x48", "72x56"], help="training sizes HxW")
    ap.add_argument("--smoke", action="store_true", help="4 images, one size")
    add_result_options(ap, "native_export")
    args = ap.parse_args()
    rows = []
    print("| data | training size | nearest: Dice with native | one-hot bilinear: Dice with native | gain (points) |")
    print("|---|---|---:|---:|---:|")
    for name in args.data:
        src = open_source(name)
        labels = [np.asarray(lab) for lab in src.splits["train"].labels][: 4 if args.smoke else None]
        truth = np.concatenate([lab.ravel() for lab in labels])
        for size in args.sizes[:1] if args.smoke else args.sizes:
            hw = tuple(int(v) for v in size.split("x"))
            small = [resize_label(lab, hw) for lab in labels]
            near = np.concatenate([resize_label(s, lab.shape).ravel() for s, lab in zip(small, labels)])
            smooth = np.concatenate([smooth_resize_label(s, lab.shape).ravel() for s, lab in zip(small, labels)])
            a = mean_dice(near, truth, src.num_classes, src.ignore_index)
            b = mean_dice(smooth, truth, src.num_classes, src.ignore_index)
            print(f"| {name} | {size} | {a:.4f} | {b:.4f} | {100 * (b - a):+.2f} |")
            rows.append({"data": name, "size": size, "images": len(labels), "nearest_dice": a, "onehot_bilinear_dice": b,
                         "gain_points": 100 * (b - a)})
    target = result_target(args, "native_export", args.smoke)
    if target:
        write_result(target[0], {"data": args.data, "sizes": args.sizes[:1] if args.smoke else args.sizes, "smoke": args.smoke,
                                 "split": "train"}, {"rows": rows}, out_dir=target[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
