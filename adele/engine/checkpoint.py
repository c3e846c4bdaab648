"""What a checkpoint holds beyond the model: the RNG state, and numpy values made loadable.

Checkpoints load with ``torch.load(weights_only=True)``; their files (names,
atomic writes, pruning, newest-readable lookup) belong to :mod:`adele.run.files`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


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
