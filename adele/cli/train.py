"""``adele train`` and ``adele demo``.

The engine, the planner and the run folder (torch) are imported by the ``cmd_*`` functions that use them, not with
this module: building the parser stays light (see :mod:`adele.cli`)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ..config import load_config, parse_override
from ..data import EMBEDDED, open_source
from ..data.cache import cache_folder
from ..errors import ConfigError
from ..reporting.tables import format_metrics_table
from ..safety import atomic_write_text
from ._common import LazyText, add_command, add_device, add_overrides, add_overwrite


def _model_help() -> str:
    from ..models import available_models  # deferred: the registry imports torch; only `adele train --help` shows it

    return f"model from the registry: {', '.join(available_models())}"


def _demo_recipe_help() -> str:
    from ..demo import DEMO_NOISE  # deferred: the demo module imports the engine (torch); only `adele demo --help` shows it

    return f"noise recipe (default: {DEMO_NOISE}, the paper's level)"


def add_parsers(sub) -> None:
    t = add_command(sub, "train", help="train a baseline or ADELE model", func=cmd_train,
                    description="Train a segmentation model on a dataset folder (generic format) or the embedded data.",
                    examples="""
        adele train --data colin27 --out runs/base --epochs 40
        adele train --data colin27 --method adele --out runs/adele --set data.noise=final
        adele train --data data/my-set --config my.yaml --out runs/x --set optim.lr=0.005 train.batch_size=8
        adele train --out runs/x --resume                # continue after an interruption
        torchrun --nproc_per_node 2 -m adele train --data colin27 --out runs/ddp
        adele train --data data/big-set --prepare-only   # write the on-disk cache once, before a multi-GPU run
        """, notes="""
        A new run starts from a recipe planned from its dataset (`adele plan DATA` prints it):
        defaults <- plan <- --config <- --set (--no-plan: defaults <- --config <- --set).
        The resolved config is saved as RUN/config.yaml (the plan and the dataset's fingerprint
        as RUN/plan.json); RUN also gets checkpoints/, history.csv, TensorBoard events (tb/) and
        metrics.json. With output redirected (a log file, a job scheduler) one line per epoch is
        printed; on a terminal, a progress bar.
        """)
    t.add_argument("--data", default=None, help="dataset folder in the generic format, or 'colin27' (embedded)")
    t.add_argument("--method", choices=["baseline", "adele"], default=None, help="baseline (cross-entropy) or adele")
    t.add_argument("--out", default=None, help="run folder (required unless --prepare-only)")
    t.add_argument("--config", default=None, help="YAML config file, or an installed preset: colin27, colin27-ce-dice, segthor, voc (see `adele config show`)")
    t.add_argument("--epochs", type=int, default=None, help="number of training epochs (train.epochs)")
    t.add_argument("--seed", type=int, default=None, help="random seed of initialization, sampling and augmentation (train.seed)")
    t.add_argument("--batch-size", type=int, default=None, help="images per step and process (train.batch_size)")
    t.add_argument("--lr", type=float, default=None, help="learning rate (optim.lr)")
    add_device(t, "device (train.device; default auto: CUDA when available)", default=None)
    t.add_argument("--model", default=None, help=LazyText(_model_help))
    t.add_argument("--train-labels", choices=["noisy", "clean"], default=None, help="train on train/labels (noisy, default) or train/labels_clean")
    t.add_argument("--noise", default=None, help="synthesize noisy train labels on the fly with this recipe (clean ones kept for analysis)")
    t.add_argument("--renoise", action="store_true",
                   help="with data.noise on a dataset that has its own noisy labels (train/labels_clean present): synthesize "
                        "new ones from the clean labels anyway (default: refused)")
    t.add_argument("--no-correction", action="store_true", help="ADELE without label correction (ablation)")
    t.add_argument("--no-consistency", action="store_true", help="ADELE without the multi-scale consistency loss (ablation)")
    t.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    add_overrides(t, "override any config field, e.g. optim.lr=0.005 adele.correction.every=5")
    t.add_argument("--no-plan", action="store_true", help="start from the defaults of `adele config show` instead of a recipe planned from the dataset")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--prepare-only", action="store_true",
                   help="prepare the data splits as this run would (into data.cache_dir when larger than "
                        "data.memory_budget_mb) and exit without training: run it once before a multi-process run, so "
                        "that no process waits while the cache is written")
    t.add_argument("--allow-changes", action="store_true", help="with --resume: continue even though data, method or settings differ from the run's (recorded in run.json)")
    add_overwrite(t, "run folder")
    _add_plan_parser(sub)
    _add_demo_parser(sub)


def _add_plan_parser(sub) -> None:
    p = add_command(sub, "plan", help="fingerprint a dataset and print the training recipe planned from it", func=cmd_plan,
                    description="""
        Read the training split of a dataset (a folder in the generic format, or the embedded colin27, colin27-brodmann
        or colin27-structures), summarize it (images, shapes, spacing, intensities, class shares, object sizes) and
        print the recipe `adele train` starts from: input size, batch, steps per epoch, epochs, optimizer and schedule,
        loss, weight average.
        """, examples="""
        adele plan colin27
        adele plan data/my-set --device cuda --out my-plan.yaml    # the plan as a config file
        """)
    p.add_argument("data", help="dataset folder in the generic format, or an embedded set (colin27, colin27-brodmann, colin27-structures)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="plan for this device (default: cuda when available)")
    p.add_argument("--out", default=None, help="also write the plan as a YAML config file (for --config)")
    add_overwrite(p, "plan file")


def _add_demo_parser(sub) -> None:
    d = add_command(sub, "demo", help="noise -> baseline -> ADELE on the embedded data, side by side", func=cmd_demo,
                    description="""
        The main job: synthesize human-like label noise on the embedded Colin27 slices of five separate brain structures
        (colin27-structures), train a baseline and ADELE on the noisy labels with the recipe planned from the data, and
        print per-class test Dice side by side.
        """, examples="""
        adele demo                       # default: runs/demo, about 8 minutes on 2 CPU cores (476 s measured alone)
        adele demo --epochs 10 --out /tmp/demo-quick
        """)
    d.add_argument("--out", default="runs/demo", help="folder for the runs (default: runs/demo)")
    d.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the planned number)")
    d.add_argument("--seed", type=int, default=0, help="train.seed and data.noise_seed of both runs (default: 0)")
    d.add_argument("--recipe", default=None, help=LazyText(_demo_recipe_help))
    add_device(d)
    add_overwrite(d, "demo folder")


def train_config_from_args(args: argparse.Namespace):
    """(config, plan record or None): a new run is planned from its dataset unless --no-plan; a resumed run reads its own config."""
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
    from ..run import files  # deferred: the run folder's files import torch
    from ..plan import planned_config  # deferred: the planner imports torch

    config_path = args.config
    if args.resume and config_path is None and files.has_config(args.out):
        return absolute_paths(load_config(str(files.config_path(args.out)), overrides)), None
    if args.resume or args.no_plan:
        return absolute_paths(load_config(config_path, overrides)), None
    cfg, planned = planned_config(config_path, overrides)
    return absolute_paths(cfg), planned


def prepared_grid_note(cfg) -> str:
    """A volume dataset's slices have the grid `adele data prepare volumes` gave them; data.size resizes them again."""
    if cfg.data.size is None or cfg.data.path in EMBEDDED:
        return ""
    from ..data.volumes import read_volume_index  # deferred: data.volumes imports torch

    idx = read_volume_index(cfg.data.path) if Path(cfg.data.path).is_dir() else None
    if not idx:
        return ""
    sizes = {tuple(rec["size_hw"]) for rec in idx["subjects"].values() if "size_hw" in rec}
    if sizes and sizes != {tuple(cfg.data.size)}:
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        return (f"data.size {cfg.data.size[0]}x{cfg.data.size[1]} resizes the slices prepared at {shown}; predictions are "
                f"still written on each volume's own grid. Set data.size=null to train on the prepared grid")
    return ""


def absolute_paths(cfg):
    """The config with ``data.path`` and ``model.pretrained`` made absolute when they name existing files or folders, so
    that the run can be resumed, exported, scored and reported from any working directory."""
    changes = {}
    for key, value in (("data.path", cfg.data.path), ("model.pretrained", cfg.model.pretrained)):
        if value and value not in EMBEDDED and Path(value).expanduser().exists():
            resolved = str(Path(value).expanduser().resolve())
            if resolved != value:
                changes[key] = resolved
    return cfg.replace(**changes) if changes else cfg


def check_renoise(cfg, renoise: bool) -> None:
    """``data.noise`` on a folder with its own noisy labels would silently train on other labels: refused unless ``renoise``."""
    d = cfg.data
    if not d.noise or d.train_labels != "noisy":
        return
    src = open_source(d.path, check_files=False)
    if src.root is None or "train" not in src.splits or not src.splits["train"].has_clean:
        return  # embedded data, or a folder whose labels serve as the clean ones: noised as always
    if not renoise:
        raise ConfigError(f"{d.path}: has its own noisy training labels (train/labels, with train/labels_clean), but data.noise="
                          f"{d.noise!r} would replace them with labels synthesized from train/labels_clean; set data.noise=null "
                          "(--set data.noise=null) to train on the folder's labels, or pass --renoise to synthesize new ones")
    print(f"warning: --renoise: training on labels synthesized from {d.path}/train/labels_clean with {d.noise!r}, "
          f"not on the folder's noisy train/labels", file=sys.stderr)


#: first line of a plan file written by `adele plan --out` (only such a file is replaced with --overwrite)
PLAN_HEADER = "# planned by `adele plan"


def cmd_plan(args: argparse.Namespace) -> int:
    from ..plan import fingerprint, plan, plan_device, plan_table  # deferred: the planner imports torch

    base = load_config(None, {"data.path": args.data})
    device = args.device or plan_device(base)
    fp = fingerprint(open_source(args.data))
    settings = plan(fp, device)
    print(plan_table(fp, settings, device))
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise ConfigError(f"{args.out} is a folder; --out takes the path of a YAML file")
        if out.exists() and not args.overwrite:
            raise ConfigError(f"{args.out} exists; pass --overwrite to replace it, or choose another --out")
        if out.exists() and not out.read_bytes().startswith(PLAN_HEADER.encode()):
            raise ConfigError(f"{args.out} exists and was not written by `adele plan`; --overwrite only replaces a plan "
                              "file: choose another --out")
        data: dict[str, Any] = {}
        for key, value in settings.items():
            section, name = key.split(".", 1)
            data.setdefault(section, {})[name] = value
        atomic_write_text(f"{PLAN_HEADER} {args.data} --device {device}`\n" + yaml.safe_dump(data, sort_keys=False), out)
        print(f"wrote {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..engine.rundir import check_run_dir  # deferred: the engine imports torch
    from ..engine.trainer import Trainer  # deferred: the engine imports torch
    from ..run.files import write_plan  # deferred: the run folder's files import torch

    if args.prepare_only:
        if args.resume or args.overwrite:
            raise ConfigError("--prepare-only writes no run: drop --resume / --overwrite")
        return prepare_only(train_config_from_args(args)[0])
    if args.out is None:
        raise ConfigError("--out is required: the run folder (or pass --prepare-only to prepare the data only)")
    cfg, planned = train_config_from_args(args)
    inputs = (args.config,) if args.config else ()
    changes = check_run_dir(cfg, args.out, args.resume, args.overwrite, args.allow_changes, inputs)  # before any data is read
    if not args.resume:
        check_renoise(cfg, args.renoise)
    trainer = Trainer(cfg, args.out)  # validates the dataset, model and pretrained weights: still nothing written
    trainer.prepare_run_dir(resume=args.resume, overwrite=args.overwrite, inputs=inputs)
    if trainer.is_main:
        note = prepared_grid_note(cfg)
        if note:
            print(f"note: {note}", file=sys.stderr)
    if planned is not None and trainer.is_main:
        write_plan(args.out, planned)
        print(f"recipe planned from {cfg.data.path} for {planned['device']} (`adele plan {cfg.data.path}` shows why; "
              f"--set overrides): " + ", ".join(f"{k}={getattr(getattr(cfg, k.split('.')[0]), k.split('.')[1])}" for k in
                                                ("data.size", "train.batch_size", "train.steps_per_epoch", "train.epochs")))
    if args.resume:
        trainer.resume()
        trainer.record_resume(changes, args.allow_changes)
        if changes:
            print("resumed with changed settings: " + "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes), file=sys.stderr)
    results = trainer.fit()
    if trainer.is_main:
        print(format_metrics_table({cfg.method: results}, split="test" if "test" in results else "val"))
        print(f"model.pt: {model_weights_line(results)}")
        print(f"run folder: {args.out}")
    return 0


def prepare_only(cfg) -> int:
    """``adele train --prepare-only``: the run's data splits prepared as training would (the on-disk cache written
    when they exceed ``data.memory_budget_mb``); nothing else is written."""
    from ..run.data import load_run_data, prepared_bytes  # deferred: the run data imports torch

    t0 = time.perf_counter()
    data = load_run_data(cfg)  # validates the dataset as training does, and writes or reuses the cache entries
    splits = {name: s for name, s in (("train", data.train), ("val", data.val), ("test", data.test)) if s is not None}
    size = prepared_bytes(cfg, data.source) / 2**20
    counts = ", ".join(f"{name} {len(s)}" for name, s in splits.items())
    if any(s.on_disk for s in splits.values()):
        cache = cache_folder(cfg.data.cache_dir)
        print(f"prepared {counts} images ({size:.0f} MB > data.memory_budget_mb {cfg.data.memory_budget_mb:g}) on disk under "
              f"{cache}, in {time.perf_counter() - t0:.1f} s: training with these settings reads them from there "
              "(`adele data cache` lists the entries)")
    else:
        print(f"prepared {counts} images ({size:.0f} MB <= data.memory_budget_mb {cfg.data.memory_budget_mb:g}): they fit in "
              "memory, so training prepares them itself and nothing was cached (data.memory_budget_mb 0 keeps them on disk)")
    return 0


def model_weights_line(results: dict) -> str:
    """Which weights model.pt holds, in words (metrics.json ``model``)."""
    m = results.get("model", {})
    if m.get("weights") == "best_val":
        return (f"epoch {m['epoch']} of {results['epochs']}, the best on the validation labels (train.model_weights: best_val; "
                "the last epoch's scores are under last_epoch in metrics.json)")
    return f"the last epoch ({results['epochs']})"


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo  # deferred: the demo imports the engine (torch) and the report (matplotlib)

    run_demo(out=args.out, epochs=args.epochs, seed=args.seed, recipe=args.recipe, device=args.device, overwrite=args.overwrite)
    return 0
