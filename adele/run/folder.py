"""The one way into a run folder: :meth:`RunFolder.open`, what every reader of a run (report, export, predict,
label quality, :class:`adele.api.Run`) and a resumed training take.

The file names and formats are :mod:`adele.run.files`'s; this object reads each file once, when first asked:

* ``raw_config`` (config.yaml as written) and ``config`` (resolved once: the :class:`~adele.config.Config` this
  version reads), ``info`` (run.json), ``history``, ``metrics``, ``adele_log``, ``memorization``;
* :meth:`model`: model.pt, best.pt or the newest checkpoint, loaded once per choice (the loader is private to this
  module);
* :meth:`training_data`: the run's dataset as it was prepared for training, checked once against the training
  images the run recorded;
* :meth:`latest_labels`: the latest corrected labels (else the original ones), checked against the training set;
* ``volume_spec``: the volume steps of a run trained on volumes, else None.
"""
from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml

from . import files
from .data import load_run_data
from ..config import Config, saved_config
from ..data.dataset import RunData
from ..data.volumes import VolumeSpec, run_volume_spec
from ..errors import AdeleError, RunError
from ..models import build_model_from_config
from ..probabilities import LoadedModel, resolve_device


class RunFolder:
    """A run folder (the ``--out`` of ``adele train``), finished or not; files are read lazily, each once."""

    def __init__(self, path: Path, name: Optional[str] = None):
        """Use :meth:`open` (``tests/test_layout.py`` fails on a call of the constructor outside ``adele/run/``)."""
        self.path = path
        self.name = name or self.path.name
        self._models: dict[tuple, LoadedModel] = {}
        self._data: Optional[RunData] = None

    @classmethod
    def open(cls, path: str | Path, name: Optional[str] = None, model_only: bool = False) -> "RunFolder":
        """The run folder at ``path``; RunError when it is not one (config.yaml or run.json missing).

        ``model_only``: the caller needs only the trained model (``adele predict``, :class:`adele.api.Run`): the folder
        must exist, and :meth:`model` says which model file is missing.
        """
        p = Path(path)
        if model_only:
            if not p.is_dir():
                raise RunError(f"{p}: run folder not found; pass the --out folder of `adele train`")
        elif not files.is_run(p):
            raise RunError(f"{p}: not a run folder ({files.CONFIG} or {files.INFO} missing); "
                           "pass the --out folder of `adele train`")
        return cls(p, name)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, method={self.method})"

    # ------------------------------------------------------------------ files

    @cached_property
    def raw_config(self) -> dict:
        """config.yaml as written ({} when missing)."""
        p = files.config_path(self.path)
        return (yaml.safe_load(p.read_text()) or {}) if p.is_file() else {}

    @cached_property
    def info(self) -> dict:
        """run.json: classes, ignore_index, dataset, train_ids, ..."""
        return files.read_json(self.path / files.INFO) or {}

    @cached_property
    def history(self) -> list[dict]:
        return files.read_history(self.path)

    @cached_property
    def metrics(self) -> Optional[dict]:
        return files.read_metrics(self.path)

    @cached_property
    def adele_log(self) -> list[dict]:
        return files.read_adele_log(self.path)

    @cached_property
    def memorization(self) -> Optional[list[dict]]:
        return files.read_memorization(self.path)

    # ------------------------------------------------------------------ the config

    @cached_property
    def config(self) -> Config:
        """The run's config, resolved once; RunError when config.yaml is missing or unreadable."""
        return saved_config(files.config_path(self.path))

    @cached_property
    def settings(self) -> Optional[Config]:
        """The config as this version of adele reads it (defaults filled in, settings it does not know dropped); None if unreadable."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return saved_config(self.raw_config)
        except AdeleError:
            return None

    @property
    def resolved_config(self) -> dict:
        """:attr:`settings` as a dict (the raw config when it cannot be read)."""
        cfg = self.settings
        return cfg.to_dict() if cfg is not None else self.raw_config

    # ------------------------------------------------------------------ summaries

    @property
    def classes(self) -> list[str]:
        return list(self.info.get("classes") or (self.metrics or {}).get("classes") or [])

    @property
    def method(self) -> str:
        return str(self.raw_config.get("method", "?"))

    @property
    def finished(self) -> bool:
        return self.metrics is not None

    @property
    def epochs_done(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0

    @property
    def seed(self) -> Any:
        return self.raw_config.get("train", {}).get("seed")

    @property
    def rounds(self) -> list[dict]:
        """Correction rounds (metrics.json once finished, else adele_log.jsonl)."""
        if self.metrics and self.metrics.get("adele"):
            return list(self.metrics["adele"].get("rounds", []))
        return [r["correction"] for r in self.adele_log if r.get("correction")]

    def series(self, key: str, dropna: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(epochs, values) of a history.csv column; missing values dropped (or NaN with ``dropna=False``)."""
        pts = [(r["epoch"], np.nan if r.get(key) is None else r[key]) for r in self.history if not dropna or r.get(key) is not None]
        if not pts:
            return np.zeros(0), np.zeros(0)
        e, v = zip(*pts)
        return np.asarray(e, dtype=float), np.asarray(v, dtype=float)

    # ------------------------------------------------------------------ model, data, labels

    def model(self, device: str = "auto", checkpoint: str = "model", allow_checkpoint: bool = False) -> LoadedModel:
        """The trained model: model.pt (``checkpoint="model"``), best.pt (``"best"``) or the last epoch's (``"last"``); with
        ``allow_checkpoint``, the newest
        epoch checkpoint of an unfinished run when model.pt is missing. Loaded once per choice."""
        key = (device, checkpoint, allow_checkpoint)
        if key not in self._models:
            in_channels = None
            if allow_checkpoint and not files.checkpoint_file(self.path, checkpoint).is_file():
                in_channels = self.training_data().train.in_channels  # a checkpoint does not record it
            self._models[key] = _load_model(self.path, device, allow_checkpoint=allow_checkpoint, in_channels=in_channels,
                                            checkpoint=checkpoint)
        return self._models[key]

    def training_data(self, shared: Optional[RunData] = None) -> RunData:
        """The run's dataset, prepared as for training (``shared``: that data, already loaded for a run of the same data
        config); RunError when its training images are not those the run was trained on."""
        if self._data is None:
            data = shared if shared is not None else load_run_data(self.config)
            if list(data.train.ids) != list(self.info.get("train_ids", data.train.ids)):
                raise RunError(f"{self.path}: the training images of {data.source.root or data.source.name} differ from those the run was "
                               "trained on; use the dataset it was trained on")
            self._data = data
        return self._data

    @cached_property
    def _latest(self) -> tuple[list[np.ndarray], str]:
        train = self.training_data().train
        rounds = files.label_rounds(self.path)
        if not rounds:
            return [x.copy() for x in train.original], "original labels (no correction round)"
        labels = files.load_labels(rounds[-1])
        if len(labels) != len(train) or any(a.shape != b.shape for a, b in zip(labels, train.original)):
            raise RunError(f"{rounds[-1]}: does not match the run's training set ({len(labels)} vs {len(train)} images); "
                           "the dataset changed since training")
        return labels, f"corrected labels of {rounds[-1].relative_to(self.path)}"

    def latest_labels(self) -> tuple[list[np.ndarray], str]:
        """(labels, origin): the latest correction round's training labels, else the original ones (copies)."""
        return self._latest

    @cached_property
    def volume_spec(self) -> Optional[VolumeSpec]:
        """The volume steps the run was trained with (``RUN/volumes.json``, else its dataset's); None for 2D runs."""
        data_path = self.raw_config.get("data", {}).get("path") if self.raw_config else None
        if data_path is None and files.checkpoint_file(self.path, "model").is_file():
            data_path = self.model("cpu").config.data.path
        return run_volume_spec(files.volume_spec_path(self.path), data_path)


def _load_model(run: str | Path, device: str = "auto", allow_checkpoint: bool = False, in_channels: Optional[int] = None,
                checkpoint: str = "model") -> LoadedModel:
    """Load ``RUN/model.pt`` (``checkpoint="model"``), ``RUN/best.pt`` (``"best"``: the best validation epoch's weights) or the
    last epoch's (``"last"``: last.pt, or model.pt where that holds the last epoch);
    with ``allow_checkpoint``, the newest epoch checkpoint of an unfinished run when model.pt is missing."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"{run}: run folder not found; pass the --out folder of `adele train`")
    path = files.checkpoint_file(run, checkpoint)
    if checkpoint == "best" and not path.is_file():
        raise RunError(f"{path}: not found; best.pt is written when a run with a validation split improves on it "
                       "(runs trained before it existed have none); use --checkpoint model")
    if path.is_file():
        try:
            state = files.load_model(run, checkpoint)
            cfg = saved_config(state["config"])
            classes, ignore, cin, origin = list(state["classes"]), int(state["ignore_index"]), int(state["in_channels"]), path.name
        except AdeleError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable or foreign file
            raise RunError(f"{path}: unreadable ({type(exc).__name__}); re-run training or restore the file") from None
    elif allow_checkpoint and files.list_checkpoints(run) and in_channels is not None and (run / files.INFO).is_file():
        found = files.load_latest(run)
        if found is None:
            raise RunError(f"{run}: no readable checkpoint and no model.pt")
        epoch, state = found
        info = files.read_info(run)
        cfg = saved_config(state["config"])
        classes, ignore, cin, origin = list(info["classes"]), int(info["ignore_index"]), int(in_channels), f"checkpoint epoch {epoch}"
    else:
        raise RunError(f"{path}: not found; the run has not finished (finish it with `adele train --out {run} --resume`)")
    model = build_model_from_config(cfg.model, cin, len(classes))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError, AttributeError):
        raise RunError(f"{path}: weights do not match the model in the run's config; the run folder is inconsistent") from None
    dev = resolve_device(device)
    model.to(dev).eval()
    return LoadedModel(model, cfg, classes, ignore, cin, dev, origin)
