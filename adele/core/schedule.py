"""Which classes a correction round corrects, and when (ADELE section 2).

Two schedules, both from the official code (``correction.classes``):

``new`` (official SegTHOR, ``train_segthor.py``)
    Each epoch, every class that is not currently due is checked again with the detection
    rule (``check(c)``). A round corrects the classes that are due and have not been corrected
    since the last reset; every ``every``-th epoch the record of corrected classes is reset,
    so each class that passes its check again is corrected once more. So in an epoch where a
    class is newly flagged only that class is corrected, and classes already corrected stay
    frozen until the next multiple of ``every``.

``flagged`` (official VOC, ``train.py``)
    Flags are permanent. A round runs in the epoch a class is first flagged and in every epoch
    that is a multiple of ``every`` once any class is flagged, and corrects every class flagged
    so far.

``once``
    Each class is corrected in one round only, in the epoch it is first flagged (by the network of its
    early learning), and never again; there are no periodic rounds.

Example (onsets 7, 12, 15, 24; every 10; 40 epochs): both schedules run rounds at epochs 7, 10,
12, 15, 20, 24, 30, 40. ``new`` corrects 7{1} 10{1} 12{2} 15{3} 20{1,2,3} 24{4} 30{all} 40{all};
``flagged`` corrects 7{1} 10{1} 12{1,2} 15{1,2,3} 20{1,2,3} 24{all} 30{all} 40{all}; ``once`` corrects
7{1} 12{2} 15{3} 24{4}.
"""
from __future__ import annotations

from typing import Callable, Iterable

SCHEDULES = ("new", "flagged", "once")


class RoundSchedule:
    """Decide, once per epoch, the (possibly empty) set of classes a round corrects.

    classes: the foreground classes that may be corrected. mode: ``"new"`` or ``"flagged"``
    (module doc). every: rounds on each multiple of ``every`` epochs (>= 1).
    """

    def __init__(self, classes: Iterable[int], mode: str, every: int):
        if mode not in SCHEDULES:
            raise ValueError(f"mode must be one of {SCHEDULES}, got {mode!r}")
        if int(every) < 1:
            raise ValueError(f"every must be >= 1 epoch, got {every}")
        self.classes = sorted({int(c) for c in classes})
        self.mode = mode
        self.every = int(every)
        #: ``new``: due for correction (the official need_label_correction_dict)
        self.due = {c: False for c in self.classes}
        #: ``new``: corrected since the last reset (already_label_correction_dict)
        self.done = {c: False for c in self.classes}
        #: ``flagged``: flagged so far
        self.flagged: set[int] = set()

    def step(self, epoch: int, check: Callable[[int], bool]) -> list[int]:
        """Classes to correct after ``epoch`` completed epochs (ascending; [] = no round).

        check(c): the detection rule's verdict for class c at this epoch. ``new`` calls it for every
        class that is not due; ``flagged`` only for classes not flagged yet.
        """
        reset = epoch % self.every == 0
        if self.mode == "once":
            new = [c for c in self.classes if c not in self.flagged and check(c)]
            self.flagged.update(new)
            return new
        if self.mode == "flagged":
            new = [c for c in self.classes if c not in self.flagged and check(c)]
            self.flagged.update(new)
            return sorted(self.flagged) if new or (self.flagged and reset) else []
        for c in self.classes:
            if not self.due[c]:
                self.due[c] = bool(check(c))
        if reset:
            self.done = {c: False for c in self.classes}
        for c in self.classes:
            if self.done[c]:
                self.due[c] = False
        out = [c for c in self.classes if self.due[c]]
        for c in out:
            self.done[c] = True
        return out

    def state_dict(self) -> dict:
        return {"mode": self.mode, "due": sorted(c for c, v in self.due.items() if v),
                "done": sorted(c for c, v in self.done.items() if v), "flagged": sorted(self.flagged)}

    def load_state_dict(self, state: dict) -> None:
        self.due = {c: c in set(state["due"]) for c in self.classes}
        self.done = {c: c in set(state["done"]) for c in self.classes}
        self.flagged = {int(c) for c in state["flagged"]}
