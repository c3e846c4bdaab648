"""The ``adele`` command. Thin: parses arguments, calls engine / noise / reporting.

Every user mistake surfaces as ``error: <one line>`` and exit code 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Optional, Sequence

from .errors import AdeleError, ConfigError

EPILOG_MAIN = """\
examples:
  adele demo                                   # noise -> baseline -> ADELE on the embedded brain data
  adele train --data colin27 --method adele --out runs/adele --set data.noise=final
  adele noise --data colin27 --out data/colin27-noisy --recipe final --seed 0
  adele data export colin27 data/colin27
  adele config show                            # every setting and its default
  adele report runs/base runs/adele --out reports/c27  # HTML page + figures
  adele predict --run runs/adele --input scans/ --out masks/

Run `adele COMMAND --help` for the options of each command.
"""


def _fmt(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one line, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .models import available_models

    p = _Parser(
        prog="adele",
        description="Train segmentation networks on noisy annotations with ADELE (adaptive early-learning correction, CVPR 2022).",
        epilog=EPILOG_MAIN,
        formatter_class=_Formatter,
    )
    p.add_argument("--version", action="version", version=f"adele {__version__}")
    p.add_argument("--debug", action="store_true", help="show the full traceback of unexpected errors (also accepted after the command)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    # ------------------------------------------------------------------ train
    t = sub.add_parser(
        "train",
        help="train a baseline or ADELE model",
        formatter_class=_Formatter,
        description="Train a segmentation model on a dataset folder (generic format) or the embedded data.",
        epilog=_fmt("""
            examples:
              adele train --data colin27 --out runs/base --epochs 40
              adele train --data colin27 --method adele --out runs/adele --set data.noise=final
              adele train --data data/my-set --config my.yaml --out runs/x --set optim.lr=0.005 train.batch_size=8
              adele train --out runs/x --resume                # continue after an interruption
              torchrun --nproc_per_node 2 -m adele train --data colin27 --out runs/ddp

            The resolved config is saved as RUN/config.yaml; RUN also gets checkpoints/,
            history.csv, TensorBoard events (tb/) and metrics.json.
            """),
    )
    _add_train_args(t, available_models())

    # ------------------------------------------------------------------ demo
    d = sub.add_parser(
        "demo",
        help="noise -> baseline -> ADELE on the embedded data, side by side",
        formatter_class=_Formatter,
        description="The main job: synthesize human-like label noise on the embedded Colin27 brain slices, train a baseline and ADELE on the noisy labels, and print per-class test Dice side by side.",
        epilog=_fmt("""
            examples:
              adele demo                       # default: runs/demo, ~6 minutes on 2 CPU cores
              adele demo --epochs 10 --out /tmp/demo-quick
            """),
    )
    d.add_argument("--out", default="runs/demo", help="folder for the runs (default: runs/demo)")
    d.add_argument("--epochs", type=int, default=None, help="epochs per run (default: from the demo config)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--recipe", default=None, help="noise recipe (default: the preset's, final:target_area=1000, the paper's level)")
    d.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    d.add_argument("--overwrite", action="store_true", help="replace an existing demo folder")

    # ------------------------------------------------------------------ data
    da = sub.add_parser("data", help="export, prepare or check datasets", formatter_class=_Formatter,
                        description="Dataset utilities.", epilog=_fmt("""
            examples:
              adele data export colin27 data/colin27
              adele data export colin27 data/c27-volumes --volumes
              adele data prepare volumes data/c27-volumes data/c27-slices --size 112 96
              adele data prepare segthor data/raw/segthor data/segthor
              adele data prepare voc data/raw/VOCdevkit data/voc --pseudo data/raw/seam_pseudo
              adele data check data/colin27
            """))
    dsub = da.add_subparsers(dest="data_command", metavar="ACTION")
    ex = dsub.add_parser("export", help="write an embedded dataset in the generic format", formatter_class=_Formatter,
                         description="Write an embedded dataset as a folder in the generic format (PNG images and labels, dataset.json).",
                         epilog=_fmt("""
            examples:
              adele data export colin27 data/colin27
              adele data export colin27 data/colin27 --overwrite
              adele data export colin27 data/c27-volumes --volumes

            Result: DIR/dataset.json, DIR/{train,val,test}/{images,labels}/z<slice>.png, DIR/LICENSE.txt;
            with --volumes: DIR/images/c27_bNN.nii.gz, DIR/labels/c27_bNN.nii.gz, DIR/dataset.json, DIR/LICENSE.txt
            """))
    ex.add_argument("name", choices=["colin27"], help="embedded dataset name")
    ex.add_argument("out", help="output folder (must not exist or be empty)")
    ex.add_argument("--volumes", action="store_true",
                    help="write NIfTI volumes (images/, labels/: 18 blocks of 6 slices as pseudo-subjects) for `adele data prepare volumes`")
    ex.add_argument("--overwrite", action="store_true")
    ch = dsub.add_parser("check", help="validate a dataset folder", formatter_class=_Formatter,
                         description="Validate a dataset folder: every image has a label of the same shape, class ids are valid, files decode; "
                                     "across splits: one channel count, unique class names, labelled pixels in every split and, "
                                     "for the given training settings, one image size when data.size is null. Training runs the same checks.",
                         epilog="examples:\n  adele data check data/colin27\n  adele data check data/my-set --set data.size=null train.batch_size=4\n")
    ch.add_argument("path")
    ch.add_argument("--config", default=None, help="also check against the data settings of this training config")
    ch.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides, as for `adele train`")
    _add_prepare_parser(dsub)

    # ------------------------------------------------------------------ noise
    n = sub.add_parser(
        "noise",
        help="write a copy of a dataset with synthetic annotation noise",
        formatter_class=_Formatter,
        description="Copy a dataset, replace the chosen split's labels with noisy ones (keeping the originals in labels_clean/), and report how wrong they are.",
        epilog=_fmt("""
            examples:
              adele noise --data colin27 --out data/colin27-final --recipe final
              adele noise --data data/my-set --out data/my-set-noisy --recipe 'final+missing:p=0.1' --seed 3
              adele noise --data colin27 --out data/x --recipe 'markov:strength=0.7' --splits train val

            recipes: under, over, final (random under/over per image, the paper's main setting), mixed,
            markov[:strength=,p_expand=], missing[:p=], confusion[:p=], extra[:p=]; join with '+'.
            --recipe also takes a YAML file: steps: [{name: final, target_area: 2000}, {name: missing, p: 0.1}]
            morphological parameters: target_area=1000, iterations=2-4 (e.g. 'final:target_area=800,iterations=1-3').
            """),
    )
    n.add_argument("--data", required=True, help="dataset folder or 'colin27'")
    n.add_argument("--out", required=True, help="output folder (new)")
    n.add_argument("--recipe", default="final")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--splits", nargs="+", default=["train"], help="splits to noise (default: train)")
    n.add_argument("--previews", type=int, default=4, help="number of preview PNGs to write")
    n.add_argument("--overwrite", action="store_true")

    # ------------------------------------------------------------------ config
    c = sub.add_parser("config", help="show the default or resolved configuration", formatter_class=_Formatter,
                       description="Print the configuration as YAML: every field, with defaults and overrides applied.",
                       epilog="examples:\n  adele config show\n  adele config show --config colin27 --set train.epochs=5\n")
    csub = c.add_subparsers(dest="config_command", metavar="ACTION")
    cs = csub.add_parser("show", help="print the resolved config")
    cs.add_argument("--config", default=None, help="YAML file or preset name (colin27, segthor, voc, ...)")
    cs.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE")
    _add_report_parsers(sub)
    return p


def _add_report_parsers(sub) -> None:
    """report, analyze, predict, export-labels: everything that reads a finished run."""
    r = sub.add_parser("report", help="HTML report (index.html + PNG figures) of one or more runs", formatter_class=_Formatter,
                       description="Write a self-contained HTML page comparing runs: val/test Dice and IoU (mean ± std over seeds), "
                                   "per-class training IoU with the fitted memorization-onset curve, correction rounds, "
                                   "memorization curves and example overlays.",
                       epilog=_fmt("""
            examples:
              adele report runs/adele --out reports/adele
              adele report runs/base runs/adele --out reports/c27 --examples 6
              adele report runs/adele-s0 runs/adele-s1 runs/adele-s2 runs/base --out reports/seeds   # mean ± std over seeds

            Open DIR/index.html in a browser; it references only files in DIR.
            """))
    r.add_argument("runs", nargs="+", metavar="RUN", help="run folders (the --out of `adele train`)")
    r.add_argument("--out", required=True, help="output folder for index.html and figures/")
    r.add_argument("--examples", type=int, default=4, help="training images shown as overlays (default: 4)")
    r.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="device for the example predictions (default: cpu)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing report folder written by `adele report`")

    a = sub.add_parser("analyze", help="analyses of a finished run", formatter_class=_Formatter, description="Analyses of a run folder.",
                       epilog="example:\n  adele analyze memorization runs/base\n")
    asub = a.add_subparsers(dest="analyze_command", metavar="ANALYSIS")
    am = asub.add_parser("memorization", help="early learning vs memorization on the wrongly labelled pixels", formatter_class=_Formatter,
                         description="Per epoch and class: among training pixels whose noisy label is wrong, the fraction predicted as the "
                                     "clean class (early learning) and as the noisy class (memorized). Needs a run with clean labels.",
                         epilog=_fmt("""
            examples:
              adele analyze memorization runs/base                 # writes runs/base/memorization.{csv,png}
              adele analyze memorization runs/base --out reports/mem
            """))
    am.add_argument("run", metavar="RUN")
    am.add_argument("--out", default=None, help="output folder (default: the run folder)")

    pr = sub.add_parser("predict", help="segment new images with a trained run", formatter_class=_Formatter,
                        description="Predict masks for a PNG/NPY/NIfTI file or a folder of them. Masks keep the input's format, size "
                                    "and (NIfTI) affine and header. A run trained on a volume dataset (`adele data prepare volumes`) "
                                    "segments NIfTI volumes with that dataset's steps (reorientation, intensity, slicing axis, in-plane "
                                    "size, neighbour slices) and writes each mask on the input's own grid; nnU-Net channel files "
                                    "<case>_0000.nii.gz, <case>_0001... are one case, written as <case>.nii.gz. Other runs segment "
                                    "NIfTI volumes slice by slice along the last axis as stored.",
                        epilog=_fmt("""
            examples:
              adele predict --run runs/adele --input scan.nii.gz --out masks/
              adele predict --run runs/heart --input data/Dataset002_Heart/imagesTs --out masks/
              adele predict --run runs/adele --input images/ --out masks/ --probs --tta --device cuda

            --probs writes DIR/probs/<name>.npy (float16, (C, H, W); (C, X, Y, Z) for a volume);
            --tta averages scales 0.75, 1, 1.25 with horizontal flips.
            """))
    pr.add_argument("--run", required=True, help="run folder with model.pt")
    pr.add_argument("--input", required=True, help="image file or folder of images")
    pr.add_argument("--out", required=True, help="output folder for the masks")
    pr.add_argument("--probs", action="store_true", help="also write probability maps")
    pr.add_argument("--tta", action="store_true", help="multi-scale + flip test-time averaging")
    pr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    pr.add_argument("--overwrite", action="store_true", help="replace an existing output folder written by `adele predict`")

    ex = sub.add_parser("export-labels", help="export a run's corrected training labels as a dataset, ranked by suspicion",
                        formatter_class=_Formatter,
                        description="Write the run's corrected training labels (latest correction round, else the original labels) "
                                    "as a dataset in the generic format at the training resolution, with label_quality.csv "
                                    "(most suspicious image first) and suspect/<id>.png masks; and in the source's own space: "
                                    "original/labels/<subject>.nii.gz on each subject's grid for volume datasets (plus "
                                    "label_quality_subjects.csv), original/labels/<id>.png at the source size for 2D datasets. "
                                    "Only the pixels the correction changed differ from the labels given.",
                        epilog=_fmt("""
            examples:
              adele export-labels --run runs/adele --out data/c27-corrected
              adele train --data data/c27-corrected --out runs/retrain     # train again on the corrected labels
            """))
    ex.add_argument("--run", required=True, help="run folder with model.pt")
    ex.add_argument("--out", required=True, help="output folder (new or empty)")
    ex.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ex.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def _add_prepare_parser(dsub) -> None:
    pr = dsub.add_parser("prepare", help="convert volumes or a public dataset (SegTHOR, PASCAL VOC) to the generic format", formatter_class=_Formatter,
                         description="Convert a folder of volumes or a downloaded public dataset into the generic format that `adele train` reads.",
                         epilog="examples:\n  adele data prepare volumes data/my-scans data/my-slices --size 128 128\n"
                                "  adele data prepare segthor data/raw/segthor data/segthor\n"
                                "  adele data prepare voc data/raw/VOCdevkit data/voc --pseudo data/raw/seam_pseudo\n")
    psub = pr.add_subparsers(dest="prepare_name", metavar="DATASET")
    sg = psub.add_parser("segthor", help="SegTHOR CT (4 thoracic organs)", formatter_class=_Formatter,
                         description="SegTHOR: RAW/Patient_XX/{Patient_XX,GT}.nii.gz -> windowed, resized axial slices (16-bit PNG) "
                                     "and uint8 labels, split by patient as in the ADELE paper (Patient_27 in test only).",
                         epilog=_fmt("""
            examples:
              adele data prepare segthor data/raw/segthor data/segthor
              adele data prepare segthor data/raw/segthor data/segthor-w --window -160 240 --size 256 --overwrite
              adele data prepare segthor data/raw/segthor data/segthor-mine --split-file my_split.json

            split file: {"train": ["Patient_01", ...], "val": [...], "test": [...]} (test optional).
            Then: adele train --config configs/segthor.yaml --data data/segthor --out runs/segthor-adele
            """))
    sg.add_argument("raw", help="folder holding Patient_01/, Patient_02/, ... (the challenge's training set)")
    sg.add_argument("out", help="output folder (must not exist or be empty)")
    sg.add_argument("--size", type=int, default=256, help="slice size in pixels, square (default: 256, as in the paper)")
    sg.add_argument("--window", type=float, nargs=2, default=[-1000.0, 1000.0], metavar=("LOW", "HIGH"),
                    help="CT window in HU mapped to [0, 1] (default: -1000 1000)")
    sg.add_argument("--all-slices", action="store_true", help="keep slices without foreground too (default: foreground slices only, as in the paper)")
    sg.add_argument("--split-file", default=None, help="JSON patient split (default: the ADELE paper's split)")
    sg.add_argument("--overwrite", action="store_true")
    vo = psub.add_parser("volumes", help="any folder of 3D scans + label volumes (NIfTI; generic or nnU-Net layout)", formatter_class=_Formatter,
                         description="Volumes -> 2D slices in the generic format, split by subject, with volumes.json recording the way "
                                     "back to each volume's grid (used by `adele predict` and `adele export-labels`). Steps: reorientation "
                                     "to canonical (RAS), intensity normalization per modality, slicing, optional neighbour slices as "
                                     "channels, in-plane resampling.",
                         epilog=_fmt("""
            layouts (SRC):
              generic:  images/<subject>.nii.gz (3D, or 4D channels last), labels/<subject>.nii.gz,
                        optional labels_noisy/<subject>.nii.gz, optional dataset.json {"classes": [...]}
              nnU-Net:  dataset.json (channel_names, labels, file_ending), imagesTr/<case>_0000.nii.gz ...,
                        labelsTr/<case>.nii.gz, optional labelsTr_noisy/, imagesTs/ (for `adele predict`)
            A noisy-label folder gives the training labels; the others become the clean reference.

            examples:
              adele data export colin27 data/c27-volumes --volumes
              adele data prepare volumes data/c27-volumes data/c27-slices --size 112 96 --split-file data/c27-volumes/split.json
              adele data prepare volumes data/Dataset002_Heart data/heart --modality mr --spacing 1.25 --context 1
              adele data prepare volumes data/ct-scans data/ct --modality ct --window -160 240 --axis coronal

            Then: adele train --data OUT --out runs/x;  adele predict --run runs/x --input scan.nii.gz --out masks/
            """))
    vo.add_argument("src", help="folder of volumes (generic or nnU-Net layout)")
    vo.add_argument("out", help="output folder (must not exist or be empty)")
    vo.add_argument("--axis", choices=["axial", "coronal", "sagittal"], default="axial", help="slicing axis in the canonical frame (default: axial)")
    vo.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="resample slices to H x W pixels")
    vo.add_argument("--spacing", type=float, nargs="+", default=None, metavar="MM", help="resample slices to this in-plane spacing (one or two values, mm)")
    vo.add_argument("--modality", choices=["auto", "ct", "mr", "none"], default="auto",
                    help="intensity steps: ct = window in HU -> [0, 1]; mr = percentile clip + z-score; none; auto = nnU-Net "
                         "channel_names, else CT when the first volume has values below -500 (default)")
    vo.add_argument("--window", type=float, nargs=2, default=[-1000.0, 1000.0], metavar=("LOW", "HIGH"), help="CT window in HU (default: -1000 1000)")
    vo.add_argument("--percentiles", type=float, nargs=2, default=[0.5, 99.5], metavar=("LOW", "HIGH"), help="MR clipping percentiles of the non-zero voxels (default: 0.5 99.5)")
    vo.add_argument("--context", type=int, default=0, metavar="K", help="add K neighbour slices on each side as extra channels (default: 0)")
    vo.add_argument("--all-slices", action="store_true", help="keep slices without foreground too (default: foreground slices only)")
    vo.add_argument("--allow-empty", action="store_true", help="accept label volumes without any foreground (default: an error)")
    vo.add_argument("--noisy-labels", default=None, metavar="DIR", help="folder of noisy training labels (default: SRC/labels_noisy or SRC/labelsTr_noisy when present)")
    vo.add_argument("--split-file", default=None, help='JSON subject split {"train": [...], "val": [...], "test": [...]} (default: sorted names, ~1/10 val, ~1/8 test)')
    vo.add_argument("--overwrite", action="store_true")
    vc = psub.add_parser("voc", help="PASCAL VOC 2012 with pseudo-labels (weakly supervised setting)", formatter_class=_Formatter,
                         description="PASCAL VOC 2012: train = JPEGs + your pseudo-labels (true labels kept in labels_clean/ for analysis), "
                                     "val = JPEGs + true labels.",
                         epilog=_fmt("""
            examples:
              adele data prepare voc data/raw/VOCdevkit data/voc --pseudo data/raw/seam_pseudo
              adele data prepare voc data/raw/VOCdevkit data/voc-1464 --pseudo data/raw/seam_pseudo --train-list train --link

            Then: adele train --config configs/voc.yaml --data data/voc --out runs/voc-adele
            """))
    vc.add_argument("devkit", help="the VOCdevkit folder (holding VOC2012/) or VOC2012 itself")
    vc.add_argument("out", help="output folder (must not exist or be empty)")
    vc.add_argument("--pseudo", required=True, help="folder of pseudo-label PNGs, <id>.png per training image (class ids, 255 = ignore)")
    vc.add_argument("--train-list", choices=["train_aug", "train"], default="train_aug", help="training ids (default: train_aug, 10,582 images)")
    vc.add_argument("--link", action="store_true", help="symlink the JPEGs instead of copying them")
    vc.add_argument("--overwrite", action="store_true")


def _add_train_args(t: argparse.ArgumentParser, models: list[str]) -> None:
    t.add_argument("--data", default=None, help="dataset folder in the generic format, or 'colin27' (embedded)")
    t.add_argument("--method", choices=["baseline", "adele"], default=None, help="baseline (cross-entropy) or adele")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--config", default=None, help="YAML config file, or an installed preset: colin27, colin27-ce-dice, segthor, voc (see `adele config show`)")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    t.add_argument("--model", default=None, help=f"model from the registry: {', '.join(models)}")
    t.add_argument("--train-labels", choices=["noisy", "clean"], default=None, help="train on train/labels (noisy, default) or train/labels_clean")
    t.add_argument("--noise", default=None, help="synthesize noisy train labels on the fly with this recipe (clean ones kept for analysis)")
    t.add_argument("--no-correction", action="store_true", help="ADELE without label correction (ablation)")
    t.add_argument("--no-consistency", action="store_true", help="ADELE without the multi-scale consistency loss (ablation)")
    t.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    t.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override any config field, e.g. optim.lr=0.005 adele.correction.every=5")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--allow-changes", action="store_true", help="with --resume: continue even though data, method or settings differ from the run's (recorded in run.json)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder (only one that `adele train` created)")


def train_config_from_args(args: argparse.Namespace):
    from .config import load_config, parse_override

    overrides: dict[str, Any] = {}
    flag_map = {
        "data": "data.path", "method": "method", "epochs": "train.epochs", "seed": "train.seed", "batch_size": "train.batch_size",
        "lr": "optim.lr", "device": "train.device", "model": "model.name", "train_labels": "data.train_labels", "noise": "data.noise",
    }
    for attr, key in flag_map.items():
        v = getattr(args, attr, None)
        if v is not None:
            overrides[key] = v
    if args.no_correction:
        overrides["adele.correction.enabled"] = False
    if args.no_consistency:
        overrides["adele.consistency.enabled"] = False
    if args.amp:
        overrides["train.amp"] = True
    for item in args.set:
        k, v = parse_override(item)
        overrides[k] = v
    config_path = args.config
    if args.resume and config_path is None and (Path(args.out) / "config.yaml").is_file():
        config_path = str(Path(args.out) / "config.yaml")
    return load_config(config_path, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from .engine.trainer import Trainer, check_run_dir
    from .reporting.tables import format_metrics_table

    cfg = train_config_from_args(args)
    inputs = (args.config,) if args.config else ()
    changes = check_run_dir(cfg, args.out, args.resume, args.overwrite, args.allow_changes, inputs)  # before any data is read
    trainer = Trainer(cfg, args.out)  # validates the dataset, model and pretrained weights: still nothing written
    trainer.prepare_run_dir(resume=args.resume, overwrite=args.overwrite, inputs=inputs)
    if args.resume:
        trainer.resume()
        trainer.record_resume(changes, args.allow_changes)
        if changes:
            print("resumed with changed settings: " + "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes), file=sys.stderr)
    results = trainer.fit()
    if trainer.is_main:
        print(format_metrics_table({cfg.method: results}, split="test" if "test" in results else "val"))
        print(f"run folder: {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, seed=args.seed, recipe=args.recipe, device=args.device, overwrite=args.overwrite)
    return 0


def cmd_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.data_command == "export":
        if args.volumes:
            from .data.colin27 import export_colin27_volumes

            out = export_colin27_volumes(args.out, overwrite=args.overwrite)
            print(f"wrote {args.name} volumes to {out}: images/ and labels/ (18 pseudo-subjects, NIfTI); next: adele data prepare volumes {out} OUT --split-file {Path(out) / 'split.json'}")
            return 0
        from .data import export_colin27

        out = export_colin27(args.out, overwrite=args.overwrite)
        print(f"wrote {args.name} to {out}")
        return 0
    if args.data_command == "check":
        from .config import load_config
        from .data import open_dataset
        from .data.dataset import check_source

        cfg = load_config(args.config, list(args.set))
        src = open_dataset(args.path)
        d = cfg.data
        check_source(src, d.size, d.normalize, d.crop, cfg.train.batch_size)
        counts = ", ".join(f"{k}: {len(v)}" for k, v in src.splits.items())
        print(f"ok: {src.name}, {src.num_classes} classes ({', '.join(src.classes)}), {counts}")
        return 0
    if args.data_command == "prepare":
        if args.prepare_name == "segthor":
            from .data.segthor import load_split_file, prepare_segthor

            split = load_split_file(args.split_file) if args.split_file else None
            prepare_segthor(args.raw, args.out, size=args.size, window=args.window, all_slices=args.all_slices, overwrite=args.overwrite, split=split)
            return 0
        if args.prepare_name == "volumes":
            from .data.volumes import load_split_file, prepare_volumes

            split = load_split_file(args.split_file) if args.split_file else None
            prepare_volumes(args.src, args.out, axis=args.axis, size=args.size, spacing=args.spacing, modality=args.modality,
                            window=args.window, percentiles=args.percentiles, context=args.context, all_slices=args.all_slices,
                            allow_empty=args.allow_empty, split=split, noisy_labels=args.noisy_labels, overwrite=args.overwrite)
            return 0
        if args.prepare_name == "voc":
            from .data.voc import prepare_voc

            prepare_voc(args.devkit, args.out, args.pseudo, train_list=args.train_list, link=args.link, overwrite=args.overwrite)
            return 0
        parser.parse_args(["data", "prepare", "--help"])
        return 2
    parser.parse_args(["data", "--help"])
    return 2


def cmd_noise(args: argparse.Namespace) -> int:
    from .config import SEED_MAX
    from .noise.command import run_noise_command

    if not 0 <= args.seed <= SEED_MAX:
        raise ConfigError(f"--seed: must be an integer in 0..{SEED_MAX}, got {args.seed}")
    if args.previews < 0:
        raise ConfigError(f"--previews: must be >= 0, got {args.previews}")

    run_noise_command(args.data, args.out, args.recipe, seed=args.seed, splits=args.splits, overwrite=args.overwrite, previews=args.previews)
    return 0


def cmd_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .config import load_config

    if args.config_command != "show":
        parser.parse_args(["config", "--help"])
        return 2
    cfg = load_config(args.config, list(args.set))
    print(cfg.to_yaml(), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .reporting.html import build_report

    if args.examples < 0:
        raise ConfigError(f"--examples: must be >= 0, got {args.examples}")
    print(f"wrote {build_report(args.runs, args.out, device=args.device, examples=args.examples, overwrite=args.overwrite)}")
    return 0


def cmd_analyze(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.analyze_command != "memorization":
        parser.parse_args(["analyze", "--help"])
        return 2
    from .reporting.memorization import analyze_memorization

    csv_path, png, table = analyze_memorization(args.run, args.out)
    print(table)
    print(f"wrote {csv_path} and {png}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import predict_files

    predict_files(args.run, args.input, args.out, probs=args.probs, tta=args.tta, device=args.device, overwrite=args.overwrite)
    return 0


def cmd_export_labels(args: argparse.Namespace) -> int:
    from .reporting.export import export_labels

    export_labels(args.run, args.out, device=args.device, overwrite=args.overwrite)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command. Exit codes: 0 done; 2 a problem with the inputs or settings (one ``error:`` line);
    1 an unexpected error (one line naming a log file with the traceback; ``--debug`` shows it); 130 interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("ADELE_DEBUG"))
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    import warnings

    from . import safety

    warnings.formatwarning = _one_line_warning
    try:
        return _dispatch(args, parser)
    except AdeleError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # a location the user chose cannot be read or written (permissions, full disk, read-only, too long a name, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; choose a location you can read and write", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; {_after_interrupt(args)}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into one line plus a log file
        if debug:
            raise
        log = safety.crash_log(exc, argv)
        where = f"the traceback is in {log}" if log else "rerun with --debug for the traceback"
        print(f"error: unexpected {type(exc).__name__}: {_one_line(exc)[:300]}; this is a bug in adele, please report it ({where})", file=sys.stderr)
        return 1
    finally:
        safety.release_all()


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _after_interrupt(args: argparse.Namespace) -> str:
    if args.command == "demo":
        return f"the demo folder is incomplete; run again with --out {args.out} --overwrite"
    if args.command in ("analyze", "config"):
        return "nothing to resume"
    if args.command != "train":
        return "nothing was written (outputs appear only when a command completes)"
    from .engine.checkpoint import list_checkpoints

    if list_checkpoints(Path(args.out)):
        return f"resume with `adele train --out {args.out} --resume`"
    if (Path(args.out) / "config.yaml").is_file():
        return f"no checkpoint was saved yet; start again with `adele train ... --out {args.out} --overwrite`"
    return "nothing was written"


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    for name in ("out", "data", "run", "input", "path", "config", "raw", "devkit", "pseudo"):
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip():
            raise ConfigError(f"{'--' + name if name not in ('path', 'raw', 'devkit') else name.upper()}: empty path; name a file or folder")
    if args.command == "train":
        return cmd_train(args)
    if args.command == "demo":
        return cmd_demo(args)
    if args.command == "data":
        return cmd_data(args, parser)
    if args.command == "noise":
        return cmd_noise(args)
    if args.command == "config":
        return cmd_config(args, parser)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "analyze":
        return cmd_analyze(args, parser)
    if args.command == "predict":
        return cmd_predict(args)
    if args.command == "export-labels":
        return cmd_export_labels(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
