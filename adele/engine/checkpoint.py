"""Atomic checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is written to a temporary file in the same folder, flushed and
renamed over its final name, so a crash never leaves a half-written
``epoch_XXXX.pt``. On resume the newest checkpoint that loads is used; a
truncated or corrupt one is reported and skipped.
"""
from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

_NAME = re.compile(r"^epoch_(\d+)\.pt$")


def crash_point(name: str, epoch: int) -> None:
    """Fault injection for the crash/resume tests: ``ADELE_CRASH_AT=name:epoch`` kills the process here.

    Points: ``batch`` (mid-epoch), ``correction`` (predictions stored, labels not yet saved),
    ``checkpoint`` (temporary checkpoint written, not yet renamed).
    """
    if os.environ.get("ADELE_CRASH_AT") == f"{name}:{epoch}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def atomic_save(obj: Any, path: Path, before_replace=None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(data: bytes, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(text: str, path: Path) -> None:
    atomic_write_bytes(text.encode(), path)


def checkpoint_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"epoch_{epoch:04d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    out = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(out)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


def load_latest(run_dir: Path, map_location: str | torch.device = "cpu") -> Optional[tuple[int, dict]]:
    """Newest checkpoint that loads; corrupt ones are skipped with a warning."""
    for epoch, path in reversed(list_checkpoints(run_dir)):
        try:
            return epoch, load_checkpoint(path, map_location)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: fall back to the previous one
            warnings.warn(f"{path}: unreadable checkpoint ({type(exc).__name__}); using the previous one", stacklevel=2)
    return None


def prune(run_dir: Path, keep: int) -> None:
    ckpts = list_checkpoints(run_dir)
    for _, path in ckpts[: max(0, len(ckpts) - keep)]:
        path.unlink(missing_ok=True)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_tensor_tree(obj: Any) -> Any:
    """numpy arrays -> tensors so the object loads with ``weights_only=True``."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: to_tensor_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_tensor_tree(v) for v in obj)
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj
