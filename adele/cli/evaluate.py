"""``adele evaluate``: score a folder of predicted masks against reference masks (as nnU-Net's ``nnUNetv2_evaluate_folder``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError, OutputError
from ..safety import atomic_write_text, check_location
from ._common import add_command, add_overwrite


def add_parsers(sub) -> None:
    e = add_command(sub, "evaluate", help="Dice, IoU and volume difference of predicted masks against reference masks", func=cmd_evaluate,
                    description="""
        Compare each mask in PREDICTIONS with the mask of the same name in LABELS (PNG/NPY class ids, or NIfTI volumes
        in their native space: same shape and affine) and write summary.json in nnU-Net's layout (metric_per_case, mean,
        foreground_mean) plus the volume difference per case and class (ml for NIfTI, pixels for 2D) and the
        dataset-level Dice of the summed confusion matrix. 'mean' and 'foreground_mean' are nnU-Net's (a case that
        predicts a class its reference lacks counts as Dice 0); 'mean_present' and 'foreground_mean_present' take only
        the cases whose reference has the class. Reference voxels with the ignore label (255, or dataset.json's
        "ignore") are not counted. Class names come from a dataset.json in LABELS, its parent or grandparent, if there
        is one.
        """, examples="""
        adele predict runs/heart --input data/Dataset002_Heart/imagesTs --out masks/
        adele evaluate masks/ data/Dataset002_Heart/labelsTs                 # writes masks/summary.json
        adele evaluate masks/ data/c27/test/labels --out reports/c27-test.json --classes 1 2
        adele evaluate masks/ data/c27/test/labels --overwrite               # replace masks/summary.json
        """, notes="""
        Every case needs a prediction and a reference with the same name (extension aside).
        """)
    e.add_argument("predictions", metavar="PREDICTIONS", help="folder of predicted masks (e.g. the --out of `adele predict`)")
    e.add_argument("labels", metavar="LABELS", help="folder of reference masks with the same case names")
    e.add_argument("--out", default=None, metavar="FILE", help="summary file to write, ending in .json (default: PREDICTIONS/summary.json)")
    e.add_argument("--classes", nargs="+", default=None, metavar="CLASS",
                   help="foreground class ids (or dataset.json names) to evaluate (default: all foreground classes)")
    add_overwrite(e, "summary file")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_folders, format_table  # deferred: it reads volumes through data.volumes (torch)

    for name, value in (("PREDICTIONS", args.predictions), ("LABELS", args.labels)):
        if not value.strip():
            raise ConfigError(f"{name}: empty path; name a folder of masks")
    out = Path(args.out) if args.out is not None else Path(args.predictions) / "summary.json"
    if not out.name.lower().endswith(".json"):
        raise ConfigError(f"--out: {out} is not a .json file; name the summary file, e.g. --out summary.json")
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; name the summary file, e.g. --out {out / 'summary.json'}")
    if out.exists() and not args.overwrite:
        raise OutputError(f"{out}: exists; pass --overwrite to replace it, or choose another --out")
    if out.exists() and not _is_summary(out):
        raise OutputError(f"{out}: is not a summary written by `adele evaluate`; --overwrite only replaces those: choose another --out")
    if Path(args.predictions).is_dir():  # a missing folder is reported by evaluate_folders with its own fix
        check_location(out.parent)  # the folder the summary goes to can be created and written
    summary = evaluate_folders(args.predictions, args.labels, classes=args.classes)
    atomic_write_text(json.dumps(summary, indent=1) + "\n", out)
    print(format_table(summary))
    print(f"wrote {out}")
    return 0


def _is_summary(path: Path) -> bool:
    """True for a summary file of ``adele evaluate`` (or nnU-Net's): a JSON object with ``metric_per_case``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "metric_per_case" in data
