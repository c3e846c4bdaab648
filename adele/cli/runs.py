"""Commands that read a finished run: ``adele report``, ``analyze``, ``predict``, ``export-labels``.

The run folder is the first positional argument of each (``--run`` is accepted for a release, with a warning).
What each command runs (torch, matplotlib) is imported by its ``cmd_*`` function (see :mod:`adele.cli`).
"""
from __future__ import annotations

import argparse

from ..errors import ConfigError
from ._common import add_command, add_device, add_overwrite, add_run_folder, run_folder, run_folders


def add_parsers(sub) -> None:
    """report, analyze, predict, export-labels: everything that reads a finished run."""
    r = add_command(sub, "report", help="HTML report (index.html + PNG figures) of one or more runs", func=cmd_report,
                    description="""
        Write a self-contained HTML page comparing runs: val/test Dice and IoU (mean ± std over seeds), per-class
        training IoU with the fitted memorization-onset curve, correction rounds, memorization curves and example
        overlays.
        """, examples="""
        adele report runs/adele --out reports/adele
        adele report runs/base runs/adele --out reports/c27 --examples 6
        adele report runs/adele-s0 runs/adele-s1 runs/adele-s2 runs/base --out reports/seeds   # mean ± std over seeds
        """, notes="""
        Open DIR/index.html in a browser; it references only files in DIR.
        """)
    r.add_argument("runs", nargs="+", metavar="RUN", help="run folders (the --out of `adele train`)")
    r.add_argument("--out", required=True, help="output folder for index.html and figures/")
    r.add_argument("--examples", type=int, default=4, help="training images shown as overlays (default: 4)")
    add_device(r, "device for the example predictions (default: cpu)", default="cpu")
    add_overwrite(r, "report folder")
    _add_analyze_parser(sub)
    _add_predict_parser(sub)
    _add_export_parser(sub)


def _add_analyze_parser(sub) -> None:
    a = add_command(sub, "analyze", help="analyses of a finished run", description="Analyses of a run folder.", func=cmd_analyze,
                    examples="adele analyze memorization runs/base")
    asub = a.add_subparsers(dest="analyze_command", metavar="ANALYSIS")
    am = add_command(asub, "memorization", help="early learning vs memorization on the wrongly labelled pixels",
                     description="""
        Per epoch and class: among training pixels whose noisy label is wrong, the fraction predicted as the clean class
        (early learning) and as the noisy class (memorized). Needs a run with clean labels.
        """, examples="""
        adele analyze memorization runs/base                 # writes runs/base/memorization.{csv,png}
        adele analyze memorization runs/base --out reports/mem
        """)
    am.add_argument("run", metavar="RUN", help="run folder (the --out of `adele train`)")
    am.add_argument("--out", default=None, help="output folder (default: the run folder)")


def _add_predict_parser(sub) -> None:
    pr = add_command(sub, "predict", help="segment new images with a trained run", func=cmd_predict,
                     description="""
        Predict masks for a PNG/NPY/NIfTI file or a folder of them. Masks keep the input's format, size and (NIfTI)
        affine and header. A run trained on a volume dataset (`adele data prepare volumes`) segments NIfTI volumes with
        that dataset's steps (reorientation, intensity, slicing axis, in-plane size, neighbour slices) and writes each
        mask on the input's own grid; nnU-Net channel files <case>_0000.nii.gz, <case>_0001... are one case, written as
        <case>.nii.gz. Other runs segment NIfTI volumes slice by slice along the last axis as stored.
        """, examples="""
        adele predict runs/adele --input scan.nii.gz --out masks/
        adele predict runs/heart --input data/Dataset002_Heart/imagesTs --out masks/
        adele predict runs/adele --input images/ --out masks/ --probs --tta --device cuda
        adele predict runs/fold0 runs/fold1 runs/fold2 runs/fold3 runs/fold4 --input imagesTs --out masks/   # fold ensemble
        """, notes="""
        --probs writes DIR/probs/<name>.npy (float16, (C, H, W); (C, X, Y, Z) for a volume);
        --tta averages scales 0.75, 1, 1.25 with horizontal flips.
        """)
    add_run_folder(pr, "run folder with model.pt (the --out of `adele train`); several (the folds of a cross-validation): their "
                       "probabilities are averaged, as nnU-Net ensembles folds", many=True)
    pr.add_argument("--input", required=True, help="image file or folder of images")
    pr.add_argument("--out", required=True, help="output folder for the masks")
    pr.add_argument("--probs", action="store_true", help="also write probability maps")
    pr.add_argument("--tta", action="store_true", help="multi-scale + flip test-time averaging")
    add_device(pr)
    pr.add_argument("--checkpoint", default="model", choices=["model", "best", "last"],
                    help="model.pt, the weights training shipped (model, default: the best validation epoch, see train.model_weights), "
                         "best.pt, those of the best validation epoch (best), or the last epoch's (last)")
    add_overwrite(pr, "output folder")


def _add_export_parser(sub) -> None:
    ex = add_command(sub, "export-labels", help="export a run's corrected training labels as a dataset, ranked by suspicion",
                     func=cmd_export_labels,
                     description="""
        Write the run's corrected training labels (latest correction round, else the original labels) as a dataset in
        the generic format at the training resolution, with label_quality.csv (which masks to re-annotate: the labels
        the run was given, most suspicious first, scored against the run's early-learning probabilities) and
        suspect/<id>.png masks; and in the source's own space: original/labels/<subject>.nii.gz on each subject's grid
        for volume datasets (plus label_quality_subjects.csv), original/labels/<id>.png at the source size for 2D
        datasets. Only the pixels the correction changed differ from the labels given. labelstudio/: those labels as
        Label Studio tasks at the source's size, worst first (one per training slice for volumes; steps in
        labelstudio/README.md). With --suspects ignore: an nnU-Net v2 raw dataset of those source-space labels instead,
        the suspect pixels set to nnU-Net's ignore label.
        """, examples="""
        adele export-labels runs/adele --out data/c27-corrected
        adele train --data data/c27-corrected --out runs/retrain     # train again on the corrected labels
        head -6 data/c27-corrected/label_quality.csv                 # the masks to redraw first
        # Label Studio: serve data/c27-corrected/labelstudio as in its README.md (docs/label-studio.md)
        adele export-labels runs/heart --out nnUNet_raw/Dataset102_HeartFixed --suspects ignore
        """, notes="""
        --suspects ignore writes OUT/imagesTr/<case>_0000.<ext>, OUT/labelsTr/<case>.<ext> and OUT/dataset.json
        with "ignore": C (C = the number of classes, nnU-Net's rule: the highest id): the corrected labels
        with C on the suspect pixels and on pixels already ignored (255). Volume datasets: one case per
        training subject on its own grid, the source volumes as images (read back by `adele data prepare
        volumes OUT ...`, C -> 255). 2D datasets: one case per training image at the source image's size,
        as PNG (file_ending ".png"). Plus label_quality.csv and README.md.
        """)
    add_run_folder(ex, "run folder with model.pt (the --out of `adele train`)")
    ex.add_argument("--out", required=True, help="output folder (new or empty)")
    add_device(ex)
    ex.add_argument("--checkpoint", default="model", choices=["model", "best", "last"],
                    help="weights for the label-quality fallback of runs without early-learning probabilities: model.pt (model), "
                         "best.pt (best) or the last epoch's (last)")
    ex.add_argument("--suspects", default="keep", choices=["keep", "ignore"],
                    help="keep: the dataset above, suspect/<id>.png beside the labels (default); ignore: an nnU-Net raw dataset "
                         "in the source's space whose labels carry nnU-Net's ignore label on the suspect pixels (see below)")
    add_overwrite(ex, "output folder")


def cmd_report(args: argparse.Namespace) -> int:
    from ..reporting.html import build_report  # deferred: the report imports torch and draws with matplotlib

    if args.examples < 0:
        raise ConfigError(f"--examples: must be >= 0, got {args.examples}")
    print(f"wrote {build_report(args.runs, args.out, device=args.device, examples=args.examples, overwrite=args.overwrite)}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..reporting.memorization import analyze_memorization  # deferred: reads the run with torch, draws with matplotlib

    if args.analyze_command != "memorization":
        args.parser.parse_args(["analyze", "--help"])
        return 2
    csv_path, png, table = analyze_memorization(args.run, args.out)
    print(table)
    print(f"wrote {csv_path} and {png}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..predict_files import predict_files  # deferred: predict_files imports torch

    predict_files(run_folders(args), args.input, args.out, probs=args.probs, tta=args.tta, device=args.device, overwrite=args.overwrite,
                  checkpoint=args.checkpoint)
    return 0


def cmd_export_labels(args: argparse.Namespace) -> int:
    from ..labels.export import export_labels  # deferred: the export imports torch

    export_labels(run_folder(args), args.out, device=args.device, overwrite=args.overwrite, checkpoint=args.checkpoint,
                  suspects=args.suspects)
    return 0
