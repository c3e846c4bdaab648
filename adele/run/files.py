"""A run folder (the ``--out`` of ``adele train``): every file name it holds, and how each file is read and written.

Layout::

    RUN/config.yaml                  the resolved config (:func:`write_config`)
    RUN/run.json                     classes, ignore_index, dataset, train_ids, has_clean, world_size, resumes
    RUN/history.csv                  one row per epoch
    RUN/memorization.json            runs with clean labels: per-epoch counts on the wrongly labelled pixels
    RUN/adele_log.jsonl              ADELE: one record per epoch (detection, correction rounds)
    RUN/labels/round_XXX.npz         ADELE: the training labels after each correction round
    RUN/labels/current.rankR.u8      ADELE, datasets on disk: the labels in use (:func:`current_labels_path`)
    RUN/store/                       ADELE: the compact prediction store (:class:`adele.core.PredictionStore`)
    RUN/checkpoints/epoch_XXXX.pt    atomic checkpoints (``torch.load(weights_only=True)``)
    RUN/metrics.json                 final scores (once finished)
    RUN/model.pt                     final weights with what is needed to use them
    RUN/tb/                          TensorBoard events, when tensorboard is installed
    RUN/quality/early_probs.npz      each class's training softmax at its memorization flag, for label quality (quality.track)
    RUN/volumes.json                 volume datasets: written by :func:`adele.data.volumes.copy_volume_spec`

Training writes these files, reporting and inference read them; neither needs the
other. Every write is atomic (:func:`adele.safety.atomic_write`): a crash never
leaves a half-written file.
"""
from __future__ import annotations

import csv
import io
import json
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..core.quality import EarlyLearningProbs
from ..errors import RunError
from ..safety import atomic_write, atomic_write_bytes, atomic_write_text

CONFIG = "config.yaml"
INFO = "run.json"
PLAN = "plan.json"
HISTORY = "history.csv"
MEMORIZATION = "memorization.json"
ADELE_LOG = "adele_log.jsonl"
METRICS = "metrics.json"
MODEL = "model.pt"
BEST = "best.pt"
LAST = "last.pt"
CHECKPOINTS = "checkpoints"
LABELS = "labels"
STORE = "store"
EARLY_PROBS = "quality/early_probs.npz"
TENSORBOARD = "tb"
VOLUMES = "volumes.json"

_CHECKPOINT_NAME = re.compile(r"^epoch_(\d+)\.pt$")
_ROUND_NAME = re.compile(r"round_\d+\.npz")


# ----------------------------------------------------------------------------- config and run.json


def config_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CONFIG


def has_config(run_dir: str | Path) -> bool:
    return config_path(run_dir).is_file()


def write_config(run_dir: str | Path, yaml_text: str) -> None:
    atomic_write_text(yaml_text, config_path(run_dir))


def write_info(run_dir: str | Path, info: dict) -> None:
    atomic_write_text(json.dumps(info, indent=1), Path(run_dir) / INFO)


def write_plan(run_dir: str | Path, plan: dict) -> None:
    """plan.json: the dataset fingerprint and the planned settings the run started from (``adele plan``)."""
    atomic_write_text(json.dumps(plan, indent=1) + "\n", Path(run_dir) / PLAN)


def read_info(run_dir: str | Path) -> dict:
    """run.json as a dict; {} when it is missing or unreadable (callers decide whether that matters)."""
    try:
        info = json.loads((Path(run_dir) / INFO).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def is_run(run_dir: str | Path) -> bool:
    """config.yaml and run.json are there: the folder is (the start of) a training run."""
    return has_config(run_dir) and (Path(run_dir) / INFO).is_file()


def read_json(path: str | Path) -> Any:
    """A JSON file of a run, None when missing; RunError when it is not valid JSON."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise RunError(f"{path}: not valid JSON (was the run interrupted while writing?); re-run or resume it") from None


# ----------------------------------------------------------------------------- logs


def write_history(run_dir: str | Path, rows: list[dict]) -> None:
    """history.csv: one row per epoch, columns in order of first appearance, None as empty."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in keys} for r in rows)
    atomic_write_text(buf.getvalue(), Path(run_dir) / HISTORY)


def _num(v: str) -> Any:
    if v == "" or v is None:
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def read_history(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def write_memorization(run_dir: str | Path, records: list[dict]) -> None:
    atomic_write_text(json.dumps(records), Path(run_dir) / MEMORIZATION)


def read_memorization(run_dir: str | Path) -> Optional[list[dict]]:
    return read_json(Path(run_dir) / MEMORIZATION) or None


def write_adele_log(run_dir: str | Path, records: list[dict]) -> None:
    atomic_write_text("\n".join(json.dumps(r) for r in records) + "\n", Path(run_dir) / ADELE_LOG)


def read_adele_log(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / ADELE_LOG
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def write_metrics(run_dir: str | Path, results: dict) -> None:
    atomic_write_text(json.dumps(results, indent=1), Path(run_dir) / METRICS)


def read_metrics(run_dir: str | Path) -> Optional[dict]:
    return read_json(Path(run_dir) / METRICS)


def store_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / STORE


def tensorboard_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / TENSORBOARD


# ----------------------------------------------------------------------------- corrected labels


def save_labels(labels, path: str | Path) -> None:
    """Atomically write a sequence of uint8 (H, W) maps (any shapes) to one npz (``flat``: the maps back to back,
    ``shapes``: (N, 2) int64). A list is written at once; any other sequence (labels on disk) one map at a time,
    in the same format, so memory stays one map whatever the number of images."""
    shapes = np.array([lab.shape for lab in labels] if isinstance(labels, list) else labels.shapes, dtype=np.int64).reshape(-1, 2)
    if isinstance(labels, list):
        buf = io.BytesIO()
        np.savez_compressed(buf, flat=np.concatenate([lab.ravel() for lab in labels]), shapes=shapes)
        atomic_write_bytes(buf.getvalue(), path)
        return

    def write(fh) -> None:
        total = int(np.prod(shapes, axis=1).sum())
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            with zf.open("flat.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": (total,)})
                for i in range(len(labels)):
                    out.write(np.ascontiguousarray(labels[i], dtype=np.uint8).tobytes())
            with zf.open("shapes.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, shapes)

    atomic_write(path, write)


def load_labels(path: str | Path) -> list[np.ndarray]:
    with np.load(path) as z:
        flat, shapes = z["flat"], z["shapes"]
    out, pos = [], 0
    for h, w in shapes:
        out.append(flat[pos : pos + h * w].reshape(int(h), int(w)).copy())
        pos += int(h * w)
    return out


def iter_labels(path: str | Path):
    """The maps of a :func:`save_labels` npz one at a time ((H, W) uint8 each), reading the file as a stream."""
    with zipfile.ZipFile(path) as zf:
        with zf.open("shapes.npy") as fh:
            shapes = np.lib.format.read_array(fh)
        with zf.open("flat.npy") as fh:
            version = np.lib.format.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                raise RunError(f"{path}: npy format {version} inside; the file is not a labels file of adele")
            header = np.lib.format.read_array_header_1_0(fh) if version == (1, 0) else np.lib.format.read_array_header_2_0(fh)
            if header[2] != np.dtype(np.uint8):
                raise RunError(f"{path}: labels are {header[2]}, not uint8; the file is not a labels file of adele")
            for h, w in shapes:
                n = int(h) * int(w)
                buf = fh.read(n)
                if len(buf) != n:
                    raise RunError(f"{path}: truncated; resume from an earlier checkpoint or start a new run")
                yield np.frombuffer(buf, dtype=np.uint8).reshape(int(h), int(w))


def current_labels_path(run_dir: str | Path, rank: int = 0) -> Path:
    """Training labels on disk (datasets past ``data.memory_budget_mb``): the labels the run currently trains on, one
    file per process, rewritten by each round and rebuilt on resume from the round's npz (the source of truth)."""
    return Path(run_dir) / LABELS / f"current.rank{rank}.u8"


def label_round_path(run_dir: str | Path, round_: int) -> Path:
    return Path(run_dir) / LABELS / f"round_{round_:03d}.npz"


def label_rounds(run_dir: str | Path) -> list[Path]:
    """labels/round_XXX.npz of a run, oldest first."""
    d = Path(run_dir) / LABELS
    return sorted(q for q in d.glob("round_*.npz") if _ROUND_NAME.fullmatch(q.name)) if d.is_dir() else []


# ----------------------------------------------------------------------------- checkpoints and model


def atomic_save(obj: Any, path: str | Path, before_replace=None) -> None:
    """``torch.save`` all or nothing (see :func:`adele.safety.atomic_write`)."""
    atomic_write(path, lambda fh: torch.save(obj, fh), before_replace)


def checkpoint_path(run_dir: str | Path, epoch: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"epoch_{epoch:04d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    out = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_NAME.match(p.name))]
    return sorted(out)


def save_checkpoint(run_dir: str | Path, epoch: int, state: dict, keep: int) -> None:
    """Write ``checkpoints/epoch_XXXX.pt``, then delete all but the newest ``keep``."""
    atomic_save(state, checkpoint_path(run_dir, epoch))
    prune(run_dir, keep)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


def load_latest(run_dir: str | Path, map_location: str | torch.device = "cpu") -> Optional[tuple[int, dict]]:
    """Newest checkpoint that loads; corrupt ones are skipped with a warning."""
    for epoch, path in reversed(list_checkpoints(run_dir)):
        try:
            return epoch, load_checkpoint(path, map_location)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: fall back to the previous one
            warnings.warn(f"{path}: unreadable checkpoint ({type(exc).__name__}); using the previous one", stacklevel=2)
    return None


def prune(run_dir: str | Path, keep: int) -> None:
    ckpts = list_checkpoints(run_dir)
    for _, path in ckpts[: max(0, len(ckpts) - keep)]:
        path.unlink(missing_ok=True)


def model_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / MODEL


def save_model(run_dir: str | Path, state: dict) -> None:
    atomic_save(state, model_path(run_dir))


def best_path(run_dir: str | Path) -> Path:
    """best.pt: the weights of the epoch with the best validation mean Dice (same content as model.pt)."""
    return Path(run_dir) / BEST


def save_best(run_dir: str | Path, state: dict) -> None:
    atomic_save(state, best_path(run_dir))


def last_path(run_dir: str | Path) -> Path:
    """last.pt: the last epoch's weights, written when model.pt holds another epoch's (``train.model_weights: best_val``)."""
    return Path(run_dir) / LAST


def save_last(run_dir: str | Path, state: dict) -> None:
    atomic_save(state, last_path(run_dir))


#: the weights a finished run offers: model.pt (what training shipped), best.pt (the best validation epoch) and the last
#: epoch's (last.pt where model.pt holds another epoch, else model.pt itself)
WEIGHT_CHOICES = ("model", "best", "last")


def checkpoint_file(run_dir: str | Path, which: str = "model") -> Path:
    """The file of checkpoint ``which`` (:data:`WEIGHT_CHOICES`)."""
    if which not in WEIGHT_CHOICES:
        raise ValueError(f"checkpoint must be one of {', '.join(WEIGHT_CHOICES)}, got {which!r}")
    if which == "best":
        return best_path(run_dir)
    if which == "last" and last_path(run_dir).is_file():
        return last_path(run_dir)
    return model_path(run_dir)


def load_model(run_dir: str | Path, which: str = "model") -> dict:
    return torch.load(checkpoint_file(run_dir, which), map_location="cpu", weights_only=True)


def volume_spec_path(run_dir: str | Path) -> Path:
    """``RUN/volumes.json``: the volume steps of a run trained on a prepared volume dataset (a copy of its index's spec)."""
    return Path(run_dir) / VOLUMES


def early_probs_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / EARLY_PROBS


def save_early_probs(run_dir: str | Path, probs: EarlyLearningProbs, summary: dict) -> None:
    """``quality/early_probs.npz``: the uint8 probabilities, each class's snapshot epoch, image shapes and a JSON summary."""
    buf = io.BytesIO()
    np.savez_compressed(buf, q=probs.q, epochs=probs.epochs, shapes=np.array(probs.shapes, dtype=np.int64).reshape(-1, 2),
                        summary=np.array(json.dumps(summary)))
    path = early_probs_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(buf.getvalue(), path)


def load_early_probs(run_dir: str | Path) -> Optional[EarlyLearningProbs]:
    """The run's early-learning probabilities, or None when it has none (``quality.track`` off, or a run made before they existed)."""
    path = early_probs_path(run_dir)
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            shapes = [(int(h), int(w)) for h, w in z["shapes"]]
            probs = EarlyLearningProbs(shapes, int(z["q"].shape[0]))
            probs.load_state_dict({"shapes": shapes, "q": z["q"], "epochs": z["epochs"]})
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        raise RunError(f"{path}: unreadable, or not the early-learning probabilities adele writes; delete it to rank the "
                       "labels with the final model instead") from None
    return probs
