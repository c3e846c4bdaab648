"""``adele data``: export the embedded data, check a dataset folder, prepare volumes or a public dataset.

``data check`` reads the folder with NumPy and PIL only; the volume steps (torch) are imported by ``prepare``."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..config import load_config
from ..data import EMBEDDED, export_colin27, open_dataset
from ..data.cache import cache_folder, clear, human_bytes, list_entries
from ..data.colin27 import export_colin27_volumes
from ..data.folder import check_source
from ..data.voc import prepare_voc
from ..errors import ConfigError
from ._common import add_command, add_out_folder, add_overrides, add_overwrite


def add_parsers(sub) -> None:
    da = add_command(sub, "data", help="export, prepare or check datasets", description="Dataset utilities.", func=cmd_data, examples="""
        adele data export colin27 data/colin27
        adele data export colin27 data/c27-volumes --volumes
        adele data prepare volumes data/c27-volumes data/c27-slices --size 112 96
        adele data prepare segthor data/raw/segthor data/segthor
        adele data prepare voc data/raw/VOCdevkit data/voc --pseudo data/raw/seam_pseudo
        adele data check data/colin27
        adele data cache clear --older-than 30
        """)
    dsub = da.add_subparsers(dest="data_command", metavar="ACTION")
    ex = add_command(dsub, "export", help="write an embedded dataset in the generic format",
                     description="Write an embedded dataset as a folder in the generic format (PNG images and labels, dataset.json).",
                     examples="""
        adele data export colin27 data/colin27
        adele data export colin27 data/colin27 --overwrite
        adele data export colin27-structures data/c27-structures
        adele data export colin27 data/c27-volumes --volumes
        adele data export colin27 data/Dataset027_Colin --volumes --layout nnunet
        """, notes="""
        Result: DIR/dataset.json, DIR/{train,val,test}/{images,labels}/z<slice>.png, DIR/LICENSE.txt;
        with --volumes: DIR/images/c27_bNN.nii.gz, DIR/labels/c27_bNN.nii.gz, DIR/dataset.json, DIR/LICENSE.txt;
        with --layout nnunet: an nnU-Net v2 raw dataset, imagesTr/ labelsTr/ (the train and val blocks),
        imagesTs/ labelsTs/ (the test blocks), dataset.json
        """)
    ex.add_argument("name", choices=list(EMBEDDED), help="embedded dataset name: colin27 (AAL lobes, tiling the brain), "
                    "colin27-brodmann (Brodmann groups, same slices), colin27-structures (5 separate structures on background)")
    add_out_folder(ex)
    ex.add_argument("--volumes", action="store_true",
                    help="write NIfTI volumes (images/, labels/: 18 blocks of 6 slices as pseudo-subjects) for `adele data prepare volumes`")
    ex.add_argument("--layout", choices=["generic", "nnunet"], default="generic",
                    help="with --volumes: the generic volume layout (default) or an nnU-Net v2 raw dataset with imagesTs/labelsTs")
    add_overwrite(ex, "dataset folder")
    ch = add_command(dsub, "check", help="validate a dataset folder",
                     description="""
        Validate a dataset folder: every image has a label of the same shape, class ids are valid, files decode; across
        splits: one channel count, unique class names, labelled pixels in every split and, for the given training
        settings, one image size when data.size is null. Training runs the same checks.
        """, examples="""
        adele data check data/colin27
        adele data check data/my-set --set data.size=null train.batch_size=4
        """)
    ch.add_argument("path", help="dataset folder in the generic format")
    ch.add_argument("--config", default=None, help="also check against the data settings of this training config")
    add_overrides(ch)
    _add_prepare_parser(dsub)
    ca = add_command(dsub, "cache", help="list or delete the prepared on-disk splits (data.cache_dir)",
                     description="""
        The splits of a dataset larger than data.memory_budget_mb are prepared once into data.cache_dir and reused
        while the dataset and the settings that shape them are unchanged; a changed file or setting gives a new entry,
        and the old ones stay until deleted. `list` shows each entry (size, images, last use); `clear` deletes them
        (with --older-than, those not used for that many days), never one being written.
        """, examples="""
        adele data cache
        adele data cache clear --older-than 30
        adele data cache clear --dry-run --cache-dir /scratch/adele-cache
        """)
    ca.add_argument("action", nargs="?", choices=["list", "clear"], default="list", help="list (default) or clear")
    ca.add_argument("--cache-dir", default=None,
                    help="the cache folder (default: data.cache_dir of --config / --set, else the user's cache folder/adele/prepared)")
    ca.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="clear: only entries not used for DAYS days")
    ca.add_argument("--dry-run", action="store_true", help="clear: say what would be deleted, delete nothing")
    ca.add_argument("--config", default=None, help="a training config whose data.cache_dir to use")
    add_overrides(ca)


def _add_prepare_parser(dsub) -> None:
    pr = add_command(dsub, "prepare", help="convert volumes or a public dataset (SegTHOR, PASCAL VOC) to the generic format",
                     description="Convert a folder of volumes or a downloaded public dataset into the generic format that `adele train` reads.",
                     examples="""
        adele data prepare volumes data/my-scans data/my-slices --size 128 128
        adele data prepare segthor data/raw/segthor data/segthor
        adele data prepare voc data/raw/VOCdevkit data/voc --pseudo data/raw/seam_pseudo
        """)
    psub = pr.add_subparsers(dest="prepare_name", metavar="DATASET")
    sg = add_command(psub, "segthor", help="SegTHOR CT (4 thoracic organs)",
                     description="""
        SegTHOR: RAW/Patient_XX/{Patient_XX,GT}.nii.gz -> windowed, resized axial slices (16-bit PNG) and uint8 labels,
        split by patient as in the ADELE paper (Patient_27 in test only).
        """, examples="""
        adele data prepare segthor data/raw/segthor data/segthor
        adele data prepare segthor data/raw/segthor data/segthor-w --window -160 240 --size 256 --overwrite
        adele data prepare segthor data/raw/segthor data/segthor-mine --split-file my_split.json
        """, notes="""
        split file: {"train": ["Patient_01", ...], "val": [...], "test": [...]} (test optional).
        Then: adele train --config configs/segthor.yaml --data data/segthor --out runs/segthor-adele
        """)
    sg.add_argument("raw", help="folder holding Patient_01/, Patient_02/, ... (the challenge's training set)")
    add_out_folder(sg)
    sg.add_argument("--size", type=int, default=256, help="slice size in pixels, square (default: 256, as in the paper)")
    sg.add_argument("--window", type=float, nargs=2, default=[-1000.0, 1000.0], metavar=("LOW", "HIGH"),
                    help="CT window in HU mapped to [0, 1] (default: -1000 1000)")
    sg.add_argument("--all-slices", action="store_true", help="keep slices without foreground too (default: foreground slices only, as in the paper)")
    sg.add_argument("--split-file", default=None, help="JSON patient split (default: the ADELE paper's split)")
    add_overwrite(sg, "output folder")
    _add_volumes_parser(psub)
    _add_voc_parser(psub)


def _add_volumes_parser(psub) -> None:
    vo = add_command(psub, "volumes", help="any folder of 3D scans + label volumes (NIfTI; generic or nnU-Net layout)",
                     description="""
        Volumes -> 2D slices in the generic format, split by subject, with volumes.json recording the way back to each
        volume's grid (used by `adele predict` and `adele export-labels`). Steps: reorientation to canonical (RAS),
        intensity normalization per modality, slicing, optional neighbour slices as channels, in-plane resampling.
        """, preface="""
        layouts (SRC):
          generic:  images/<subject>.nii.gz (3D, or 4D channels last), labels/<subject>.nii.gz,
                    optional labels_noisy/<subject>.nii.gz, optional dataset.json {"classes": [...]}
          nnU-Net:  dataset.json (channel_names, labels, file_ending), imagesTr/<case>_0000.nii.gz ...,
                    labelsTr/<case>.nii.gz, optional labelsTr_noisy/, imagesTs/ (for `adele predict`),
                    optional labelsTs/ (the test split with --fold)
        A noisy-label folder gives the training labels; the others become the clean reference.
        Cross-validation (--fold K, as nnU-Net): train/val are fold K of SRC/splits_final.json, of --split-file
        (nnU-Net's list of {"train", "val"}), or of 5 folds generated as nnU-Net does (KFold, seed 12345);
        OUT/splits_final.json records them. Prepare each fold into its own folder, train each, and give
        `adele predict` all the fold runs to average them.
        """, examples="""
        adele data export colin27 data/c27-volumes --volumes
        adele data prepare volumes data/c27-volumes data/c27-slices --size 112 96 --split-file data/c27-volumes/split.json
        adele data prepare volumes data/Dataset002_Heart data/heart --modality mr --spacing 1.25 --context 1
        adele data prepare volumes data/ct-scans data/ct --modality ct --window -160 240 --axis coronal
        adele data prepare volumes data/Dataset002_Heart data/heart-f0 --fold 0   # fold 0 of nnU-Net's 5
        """, notes="""
        Then: adele train --data OUT --out runs/x;  adele predict runs/x --input scan.nii.gz --out masks/
        """)
    vo.add_argument("src", help="folder of volumes (generic or nnU-Net layout)")
    add_out_folder(vo)
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
    vo.add_argument("--split-file", default=None, help='JSON subject split {"train": [...], "val": [...], "test": [...]} (default: sorted '
                    'names, ~1/10 val, ~1/8 test); with --fold, nnU-Net\'s splits_final.json [{"train": [...], "val": [...]}, ...]')
    vo.add_argument("--fold", type=int, default=None, metavar="K", help="cross-validation fold K (0-based, as nnU-Net); see above")
    vo.add_argument("--folds", type=int, default=5, metavar="N", help="number of folds generated when none are given (default: 5)")
    add_overwrite(vo, "output folder")


def _add_voc_parser(psub) -> None:
    vc = add_command(psub, "voc", help="PASCAL VOC 2012 with pseudo-labels (weakly supervised setting)",
                     description="""
        PASCAL VOC 2012: train = JPEGs + your pseudo-labels (true labels kept in labels_clean/ for analysis), val =
        JPEGs + true labels.
        """, examples="""
        adele data prepare voc data/raw/VOCdevkit data/voc --pseudo data/raw/seam_pseudo
        adele data prepare voc data/raw/VOCdevkit data/voc-1464 --pseudo data/raw/seam_pseudo --train-list train --link
        """, notes="""
        Then: adele train --config configs/voc.yaml --data data/voc --out runs/voc-adele
        """)
    vc.add_argument("devkit", help="the VOCdevkit folder (holding VOC2012/) or VOC2012 itself")
    add_out_folder(vc)
    vc.add_argument("--pseudo", required=True, help="folder of pseudo-label PNGs, <id>.png per training image (class ids, 255 = ignore)")
    vc.add_argument("--train-list", choices=["train_aug", "train"], default="train_aug", help="training ids (default: train_aug, 10,582 images)")
    vc.add_argument("--link", action="store_true", help="symlink the JPEGs instead of copying them")
    add_overwrite(vc, "output folder")


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "export":
        if args.volumes:
            if args.name != "colin27":
                raise ConfigError(f"--volumes exports the AAL label set only; use `adele data export colin27 OUT --volumes`, "
                                  f"or export {args.name} without --volumes")
            out = export_colin27_volumes(args.out, overwrite=args.overwrite, layout=args.layout)
            if args.layout == "nnunet":
                print(f"wrote {args.name} volumes to {out}: an nnU-Net dataset (imagesTr/labelsTr: 15 cases, imagesTs/labelsTs: 3, NIfTI); "
                      f"next: adele data prepare volumes {out} OUT --fold 0")
            else:
                print(f"wrote {args.name} volumes to {out}: images/ and labels/ (18 pseudo-subjects, NIfTI); next: adele data prepare volumes {out} OUT --split-file {Path(out) / 'split.json'}")
            return 0
        if args.layout != "generic":
            raise ConfigError("--layout chooses the layout of --volumes; add --volumes")
        out = export_colin27(args.out, overwrite=args.overwrite, name=args.name)
        print(f"wrote {args.name} to {out}")
        return 0
    if args.data_command == "check":
        cfg = load_config(args.config, list(args.set))
        src = open_dataset(args.path)
        d = cfg.data
        check_source(src, d.size, d.normalize, d.crop, cfg.train.batch_size)
        counts = ", ".join(f"{k}: {len(v)}" for k, v in src.splits.items())
        print(f"ok: {src.name}, {src.num_classes} classes ({', '.join(src.classes)}), {counts}")
        return 0
    if args.data_command == "cache":
        return _cache(args)
    if args.data_command == "prepare":
        if args.prepare_name == "segthor":
            from ..data.segthor import load_split_file as load_segthor_split, prepare_segthor  # deferred: data.volumes imports torch

            split = load_segthor_split(args.split_file) if args.split_file else None
            prepare_segthor(args.raw, args.out, size=args.size, window=args.window, all_slices=args.all_slices, overwrite=args.overwrite, split=split)
            return 0
        if args.prepare_name == "volumes":
            from ..data.volumes import load_split_file, prepare_volumes, read_folds  # deferred: data.volumes imports torch

            folded = args.fold is not None
            split = load_split_file(args.split_file) if args.split_file and not folded else None
            prepare_volumes(args.src, args.out, axis=args.axis, size=args.size, spacing=args.spacing, modality=args.modality,
                            window=args.window, percentiles=args.percentiles, context=args.context, all_slices=args.all_slices,
                            allow_empty=args.allow_empty, split=split, noisy_labels=args.noisy_labels, overwrite=args.overwrite,
                            fold=args.fold, folds=read_folds(args.split_file) if args.split_file and folded else None, n_folds=args.folds)
            return 0
        if args.prepare_name == "voc":
            prepare_voc(args.devkit, args.out, args.pseudo, train_list=args.train_list, link=args.link, overwrite=args.overwrite)
            return 0
        args.parser.parse_args(["data", "prepare", "--help"])
        return 2
    args.parser.parse_args(["data", "--help"])
    return 2


def _cache(args: argparse.Namespace) -> int:
    """``adele data cache [list|clear]``."""
    if args.cache_dir:
        root = Path(args.cache_dir).expanduser()
    else:
        d = load_config(args.config, list(args.set)).data
        root = cache_folder(d.cache_dir)
    if args.action == "list":
        if args.older_than is not None or args.dry_run:
            raise ConfigError("--older-than and --dry-run go with `adele data cache clear`")
        entries = list_entries(root)
        if not entries:
            print(f"{root}: no prepared splits")
            return 0
        now = time.time()
        for e in entries:
            what = f"{e.images} images" if e.images is not None else "?"
            state = "" if e.complete else (" (being written)" if e.writer_alive else " (partial: its writer died)")
            print(f"{human_bytes(e.bytes):>9}  {what:>12}  used {(now - e.last_used) / 86400:6.1f} days ago  {e.name}{state}")
        print(f"{root}: {len(entries)} entries, {human_bytes(sum(e.bytes for e in entries))}")
        return 0
    gone = clear(root, args.older_than, args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for e in gone:
        print(f"{verb} {e.name} ({human_bytes(e.bytes)})")
    print(f"{root}: {verb} {len(gone)} entries, {human_bytes(sum(e.bytes for e in gone))}")
    return 0
