"""``adele noise``: a copy of a dataset with synthetic annotation noise."""
from __future__ import annotations

import argparse

from ..config import SEED_MAX
from ..errors import ConfigError
from ._common import LazyText, add_command, add_overwrite


def _recipe_notes() -> str:
    from ..noise.recipes import DEFAULT_ITERATIONS, DEFAULT_TARGET_AREA, format_value  # deferred: the recipes import scipy

    area, iterations = format_value(DEFAULT_TARGET_AREA), format_value(DEFAULT_ITERATIONS)
    return f"""
        recipes: under, over, final (random under/over per image, the paper's main setting), mixed,
        markov[:strength=,p_expand=], missing[:p=], confusion[:p=], extra[:p=]; join with '+'.
        --recipe also takes a YAML file: steps: [{{name: final, target_area: 800}}, {{name: missing, p: 0.1}}]
        morphological parameters: target_area={area}, iterations={iterations} (e.g. 'final:target_area=800,iterations=1-3'),
        variant=official (the official SegTHOR noise) or painted (the earlier variant),
        order=ascending|random|IDS (class ids joined by '-'; the official SegTHOR noise: order=1-3-4-2).
        """


def add_parsers(sub) -> None:
    n = add_command(sub, "noise", help="write a copy of a dataset with synthetic annotation noise", func=cmd_noise,
                    description="""
        Copy a dataset, replace the chosen split's labels with noisy ones (keeping the originals in labels_clean/), and
        report how wrong they are.
        """, examples="""
        adele noise --data colin27 --out data/colin27-final --recipe final
        adele noise --data data/my-set --out data/my-set-noisy --recipe 'final+missing:p=0.1' --seed 3
        adele noise --data colin27 --out data/x --recipe 'markov:strength=0.7' --splits train val
        """, notes=LazyText(_recipe_notes))
    n.add_argument("--data", required=True, help="dataset folder or 'colin27'")
    n.add_argument("--out", required=True, help="output folder (new)")
    n.add_argument("--recipe", default="final", help="noise recipe or YAML file (default: final)")
    n.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0); image i gets its own generator from (seed, i)")
    n.add_argument("--splits", nargs="+", default=["train"], help="splits to noise (default: train)")
    n.add_argument("--previews", type=int, default=4, help="number of preview PNGs to write")
    add_overwrite(n, "output folder")


def cmd_noise(args: argparse.Namespace) -> int:
    from .noisy_copy import run_noise_command  # deferred: it reads datasets through data.volumes (torch)

    if not 0 <= args.seed <= SEED_MAX:
        raise ConfigError(f"--seed: must be an integer in 0..{SEED_MAX}, got {args.seed}")
    if args.previews < 0:
        raise ConfigError(f"--previews: must be >= 0, got {args.previews}")

    run_noise_command(args.data, args.out, args.recipe, seed=args.seed, splits=args.splits, overwrite=args.overwrite, previews=args.previews)
    return 0
