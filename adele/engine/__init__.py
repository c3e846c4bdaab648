"""Training engine: trainer, checkpoints, ADELE scheduling, distributed helpers."""
from .trainer import Trainer, load_run_data

__all__ = ["Trainer", "load_run_data"]
