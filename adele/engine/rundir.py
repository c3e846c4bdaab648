"""The run folder's lifecycle: checks before any data is read, taking the folder, and what a resume may change.

A new run takes ``--out`` (refused when it holds something else, or when a process is writing there),
locks it and writes its marker, config and run.json; a resume checks the saved config against the new
one (:data:`RESUME_FREE_KEYS` may change freely) and records each resume in run.json.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

from .. import safety
from ..config import EXECUTION_KEYS, Config, flatten, saved_config
from ..config.settings import resolve_val_labels
from ..data import EMBEDDED, dataset_folder
from ..data.volumes import copy_volume_spec
from ..errors import OutputError, RunError
from ..run import files


#: settings that ``--resume`` may change without ``--allow-changes``: how a run executes and how long it trains
RESUME_FREE_KEYS = ("train.epochs", "train.model_weights", "train.patience") + EXECUTION_KEYS


def run_inputs(cfg: Config) -> list[str]:
    """Files and folders a training run reads, which its run folder must not hold or be."""
    return [p for p in (dataset_folder(cfg.data.path), cfg.model.pretrained) if p]


def _same_setting(key: str, a: Any, b: Any) -> bool:
    if a == b:
        return True
    if key in ("data.path", "model.pretrained") and a and b and a not in EMBEDDED and b not in EMBEDDED:
        pa, pb = Path(str(a)).expanduser(), Path(str(b)).expanduser()
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)  # the same folder, however it was spelled (symlinks included)
        return pa.resolve() == pb.resolve()
    return False


def config_changes(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` for every setting that differs between two config dicts (``data.val_labels`` compared as
    resolved: null is the value it stands for)."""
    fo, fn = flatten(old), flatten(new)
    for f in (fo, fn):
        if "data.val_labels" in f:
            f["data.val_labels"] = resolve_val_labels(f["data.val_labels"], f.get("data.noise"))
    keys = list(fn) + [k for k in fo if k not in fn]
    return [(k, fo.get(k), fn.get(k)) for k in keys if not _same_setting(k, fo.get(k), fn.get(k))]


def check_run_dir(cfg: Config, run_dir: str | Path, resume: bool, overwrite: bool, allow_changes: bool = False,
                  inputs: tuple = ()) -> list[tuple[str, Any, Any]]:
    """Read-only checks of ``--out`` before any data is loaded; for a resume, returns the settings that change.

    A resume with settings other than :data:`RESUME_FREE_KEYS` changed is refused unless ``allow_changes``
    (``train.batch_size`` may change with the number of processes when the global batch stays the same).
    """
    d = Path(run_dir)
    if resume and overwrite:
        raise RunError("--resume and --overwrite contradict each other: --resume continues the run in --out, --overwrite replaces it; pass one")
    if not resume:
        if allow_changes:
            raise RunError("--allow-changes only applies with --resume")
        safety.check_output(d, "train", run_inputs(cfg) + list(inputs), overwrite)
        holder = safety.locked_by(d) if d.is_dir() else None
        if holder is not None:
            raise RunError(f"{d}: another process is writing here ({holder}); wait for it to finish or stop it")
        return []
    if not files.has_config(d):
        raise RunError(f"{d}: no run to resume here (config.yaml missing); drop --resume to start a new run")
    holder = safety.locked_by(d)
    if holder is not None:
        raise RunError(f"{d}: another process is writing here ({holder}); wait for it to finish or stop it")
    if not files.list_checkpoints(d):
        raise RunError(f"{d}: no checkpoint to resume from (interrupted before the first one); start again with --overwrite")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = saved_config(files.config_path(d)).to_dict()
    changes = config_changes(old, cfg.to_dict())
    try:
        old_world = int(files.read_info(d).get("world_size", 1))
    except (ValueError, TypeError):
        old_world = 1
    world = int(os.environ.get("WORLD_SIZE", "1"))

    def free(key: str, a: Any, b: Any) -> bool:
        # train.batch_size is per process: a change that keeps the global batch follows a change of world size
        same_global = key == "train.batch_size" and isinstance(a, int) and isinstance(b, int) and a * old_world == b * world
        return key in RESUME_FREE_KEYS or same_global

    blocked = [c for c in changes if not free(*c)]
    if blocked and not allow_changes:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in blocked[:6]) + (f"; and {len(blocked) - 6} more" if len(blocked) > 6 else "")
        raise RunError(f"{d}: --resume continues the checkpoint with the run's saved settings, but these differ: {listed}; drop them, "
                       "start a new run with another --out, or pass --allow-changes to continue anyway (recorded in run.json)")
    return changes


def take_run_dir(d: Path, cfg: Config, resume: bool, overwrite: bool, extra_inputs: list, info: dict, source) -> None:
    """Take the run folder (rank 0): its lock, stale temp files removed; a new run also gets its marker, config.yaml,
    run.json (``info``) and, for a volume dataset, the volume steps of ``source``."""
    if resume:
        if not files.has_config(d):
            raise RunError(f"{d}: no run to resume here (config.yaml missing); drop --resume to start a new run")
        safety.lock_folder(d, "train")
        safety.clean_stale_temp_files(d)
        if not files.list_checkpoints(d):
            raise RunError(f"{d}: no checkpoint to resume from; start again with --overwrite")
        return
    inputs = run_inputs(cfg) + extra_inputs
    safety.check_output(d, "train", inputs, overwrite)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{d}: cannot create the run folder ({exc.strerror}); choose a location you can write to") from None
    safety.lock_folder(d, "train")
    safety.check_output(d, "train", inputs, overwrite)  # again under the lock: nothing changed hands meanwhile
    safety.clear_folder(d)
    safety.write_marker(d, "train")
    files.write_config(d, cfg.to_yaml())
    files.write_info(d, info)
    copy_volume_spec(source, files.volume_spec_path(d))  # volume datasets: the steps `adele predict` repeats on a volume


def record_resume(d: Path, cfg: Config, epoch: int, changes: list[tuple[str, Any, Any]], allowed: bool, world_size: int) -> None:
    """After a successful resume: config.yaml says what the run now uses; run.json lists every resume and its changes."""
    if changes:
        files.write_config(d, cfg.to_yaml())
    info = files.read_info(d)
    info.setdefault("resumes", []).append({
        "from_epoch": epoch, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "allow_changes": allowed,
        "changes": {k: {"old": a, "new": b} for k, a, b in changes}, "world_size": world_size})
    info["world_size"] = world_size
    files.write_info(d, info)
