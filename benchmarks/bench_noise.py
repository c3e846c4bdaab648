"""Time each noise recipe on a stack of label maps and print a markdown table.

Usage::

    python benchmarks/bench_noise.py                   # 72 synthetic 96x112 maps, 9 classes
    python benchmarks/bench_noise.py labels.npy --num-classes 9
    python benchmarks/bench_noise.py colin27           # the embedded training labels
    python benchmarks/bench_noise.py --smoke           # seconds: 8 small maps, one run per recipe

``labels.npy`` holds an ``(N, H, W)`` integer stack (0 = background, 255 = ignore).
Each recipe runs ``--repeat`` times over the whole stack (seeded, so every run
produces the same maps); the best wall time is reported, with the noisy-vs-clean
foreground Dice so the numbers can be read next to the noise level.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adele.noise import noise_dataset, noise_stats, parse_recipe, synthetic_label_map  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402

DEFAULT_RECIPES = (
    "under", "over", "final", "mixed", "markov",
    "final+missing:p=0.1", "final+extra:p=0.2+confusion:p=0.1",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", nargs="?", help="(N, H, W) .npy label stack; default: synthetic maps")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classes incl. background (default: 9 for synthetic, else max id + 1)")
    parser.add_argument("--ignore-index", type=int, default=255)
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES))
    parser.add_argument("--repeat", type=int, default=3, help="runs per recipe; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="8 synthetic maps of 48x56, one run per recipe: the code path in seconds")
    add_result_options(parser, "noise_synthetic, noise_colin27 or noise_<file stem>")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeat = 1

    try:
        recipes = [parse_recipe(spec) for spec in args.recipes]  # fail fast on a typo
    except ValueError as err:
        parser.error(str(err))
    if args.labels == "colin27":
        from adele.data import load_colin27

        labels = load_colin27().splits["train"].labels
        num_classes = args.num_classes or 10
        source = "embedded Colin27 training labels (72 x 217x181)"
        tag = "colin27"
    elif args.labels:
        labels = np.load(args.labels)
        if labels.ndim != 3:
            parser.error(f"{args.labels} has shape {labels.shape}; expected an (N, H, W) stack")
        source = f"`{args.labels}`"
        tag = Path(args.labels).stem
        num_classes = args.num_classes
        if num_classes is None:
            num_classes = int(labels[labels != args.ignore_index].max(initial=0)) + 1
    else:
        num_classes = args.num_classes or 9
        labels = np.stack([
            synthetic_label_map(np.random.default_rng([args.seed, i]), (48, 56) if args.smoke else (96, 112), num_classes,
                                ignore_fraction=0.01, ignore_index=args.ignore_index)
            for i in range(8 if args.smoke else 72)
        ])
        source = "synthetic atlas-like maps"
        tag = "synthetic"
    n, h, w = labels.shape
    maps = list(labels)

    print(f"{n} label maps of {h}x{w}, {num_classes} classes, {source}; best of {args.repeat} runs; "
          f"Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()}\n")
    print("| recipe | slices/s | ms/slice | fg Dice vs clean | changed px % |")
    print("|---|---:|---:|---:|---:|")
    rows = {}
    for spec, recipe in zip(args.recipes, recipes):
        best = float("inf")
        for _ in range(max(1, args.repeat)):
            start = time.perf_counter()
            try:
                noisy, _ = noise_dataset(maps, recipe, args.seed, num_classes, args.ignore_index)
            except ValueError as err:  # e.g. LabelError: a class id >= --num-classes
                parser.error(str(err))
            best = min(best, time.perf_counter() - start)
        stats = noise_stats(maps, noisy, num_classes, args.ignore_index)
        print(f"| `{spec}` | {n / best:.0f} | {1000 * best / n:.2f} | {stats['fg_dice']:.3f} | "
              f"{100 * stats['changed_fraction']:.1f} |")
        rows[spec] = {"slices_per_s": n / best, "ms_per_slice": 1000 * best / n, "fg_dice_vs_clean": float(stats["fg_dice"]),
                      "changed_percent": 100 * float(stats["changed_fraction"])}
    target = result_target(args, f"noise_{tag}", args.smoke)
    if target:
        write_result(target[0], {"labels": args.labels or "synthetic", "maps": n, "size": [h, w], "num_classes": num_classes,
                                 "ignore_index": args.ignore_index, "recipes": args.recipes, "repeat": args.repeat, "seed": args.seed,
                                 "smoke": args.smoke}, {"recipes": rows}, out_dir=target[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
