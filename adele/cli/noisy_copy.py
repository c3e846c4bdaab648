"""``adele noise``: write a noisy copy of a dataset, with a report and previews.

The copy is assembled in a temporary folder next to ``out`` and renamed into
place only when complete, so a failure never leaves a half-written dataset;
the input folder is only read.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data import dataset_folder, open_source
from ..data.folder import ArraySplit, FolderSplit, write_dataset_json
from ..data.io import suffix_of, write_array
from ..data.volumes import copy_volume_index
from ..errors import DatasetError
from ..metrics import rounded
from ..safety import check_output, staged_output
from ..noise.recipes import load_recipe, noise_dataset
from ..noise.report import format_table, noise_stats, preview_png


def run_noise_command(
    data: str,
    out: str | Path,
    recipe: str,
    seed: int = 0,
    splits: Sequence[str] = ("train",),
    overwrite: bool = False,
    previews: int = 4,
    log=print,
) -> dict:
    """Noise ``splits`` of ``data`` (folder or ``colin27``) into a new dataset at ``out``.

    Returns the report dict that is also written to ``out/noise_report.json``.
    """
    parsed = load_recipe(recipe)  # RecipeError (exit 2) before anything is touched
    out = Path(out)
    inputs = [dataset_folder(data), recipe if recipe.endswith((".yaml", ".yml")) else None]
    check_output(out, "noise", inputs, overwrite)
    src = open_source(data)
    for s in splits:
        if s not in src.splits:
            raise DatasetError(f"{data}: has no '{s}' split to noise; available: {', '.join(src.splits)}")
    with staged_output(out, "noise", inputs, overwrite) as tmp:
        report: dict = {"recipe": parsed.to_spec(), "seed": seed, "source": str(data), "splits": {}}
        write_dataset_json(tmp, f"{src.name}-noisy", src.classes, src.ignore_index)
        for split_name, split in src.splits.items():
            sdir = tmp / split_name
            noisy_split = split_name in splits
            labels = [np.asarray(split.label(i)) for i in range(len(split))]
            if noisy_split:
                noisy, events = noise_dataset(labels, parsed, seed, src.num_classes, src.ignore_index)
            for i, sid in enumerate(split.ids):
                if isinstance(split, FolderSplit):
                    img_p, lab_p = split.image_paths[i], split.label_paths[i]
                    (sdir / "images").mkdir(parents=True, exist_ok=True)
                    shutil.copy2(img_p, sdir / "images" / img_p.name)
                    lab_suffix = suffix_of(lab_p)
                    like = lab_p if lab_suffix in (".nii", ".nii.gz") else None
                else:
                    assert isinstance(split, ArraySplit)
                    write_array(sdir / "images" / f"{sid}.png", split.images[i])
                    lab_suffix, like = ".png", None
                name = f"{sid}{lab_suffix}"
                if noisy_split:
                    write_array(sdir / "labels" / name, noisy[i], like=like)
                    write_array(sdir / "labels_clean" / name, labels[i], like=like)
                elif isinstance(split, FolderSplit):
                    (sdir / "labels").mkdir(parents=True, exist_ok=True)
                    shutil.copy2(split.label_paths[i], sdir / "labels" / name)
                    if split.clean_paths is not None:
                        (sdir / "labels_clean").mkdir(parents=True, exist_ok=True)
                        shutil.copy2(split.clean_paths[i], sdir / "labels_clean" / name)
                else:
                    write_array(sdir / "labels" / name, labels[i])
            if noisy_split:
                report["splits"][split_name] = _report_split(tmp, split_name, split, labels, noisy, events, src, parsed, seed, previews, log)
        (tmp / "noise_report.json").write_text(json.dumps(report, indent=1) + "\n")
        if src.root is not None:  # a volume dataset stays one: its way back to the volumes' grids is kept
            copy_volume_index(Path(src.root), tmp, noised_splits=[s for s in splits if s in src.splits])
    log(f"wrote {out} (report: {out / 'noise_report.json'})")
    return report


def _report_split(tmp: Path, split_name: str, split, labels, noisy, events, src, parsed, seed: int, previews: int, log) -> dict:
    """How wrong one noised split is (noise_report.json's entry, the printed table) and its preview images."""
    stats = noise_stats(labels, noisy, src.num_classes, src.ignore_index)
    counts: Counter = Counter()
    for ev in events:
        counts.update({k: int(v > 0) for k, v in ev.items()})
    entry = {
        "images": len(labels),
        "fg_dice": rounded(stats["fg_dice"], 4),
        "fg_iou": rounded(stats["fg_iou"], 4),
        "fg_dice_per_image": rounded(stats["fg_dice_per_image"], 4),
        "changed_fraction": rounded(stats["changed_fraction"], 4),
        "dice": {c: rounded(v, 4) for c, v in zip(src.classes, stats["dice"])},
        "iou": {c: rounded(v, 4) for c, v in zip(src.classes, stats["iou"])},
        "images_with_error": dict(sorted(counts.items())),
    }
    log(f"{split_name}: {len(labels)} label maps, recipe '{parsed.to_spec()}', seed {seed}")
    log(format_table(stats, list(src.classes)))
    log("images with each error type: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    (tmp / "previews").mkdir(exist_ok=True)
    for i in range(min(previews, len(labels))):
        img = np.asarray(split.image(i), dtype=np.float32)
        img = img.mean(-1) if img.ndim == 3 else img
        img = (img - img.min()) / max(1e-6, float(img.max() - img.min()))
        preview_png(img, labels[i], noisy[i], tmp / "previews" / f"{split_name}_{split.ids[i]}.png")
    return entry
