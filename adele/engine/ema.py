"""Weight averaging for evaluation: an exponential moving average of the network's parameters (``train.ema``)."""
from __future__ import annotations

import copy

import torch


class WeightEMA:
    """Exponential moving average of a model's parameters; buffers (BatchNorm statistics) are copied.

    After each optimizer step ``n``: avg <- d * avg + (1 - d) * w with d = min(decay, (1 + n) / (10 + n)).
    ``model`` is a frozen copy of the network holding the average, in eval mode.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.steps = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for avg, w in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(w.detach(), 1.0 - d)
        for avg, b in zip(self.model.buffers(), model.buffers()):
            avg.copy_(b)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self.model.load_state_dict(state["model"])
