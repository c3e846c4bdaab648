"""Writing nnU-Net v2 raw datasets: file names and ``dataset.json``.

Used by ``adele data export colin27 --volumes --layout nnunet`` and ``adele export-labels --suspects ignore``::

    OUT/dataset.json                   name, channel_names, labels {name: id}, numTraining, file_ending
    OUT/imagesTr/<case>_0000<ending>   one file per channel (an RGB PNG is one file with three channels)
    OUT/labelsTr/<case><ending>

nnU-Net's rules kept here: the background is named ``background`` and has id 0, the class ids are
consecutive, and an ``"ignore"`` label is the highest id, the one after the classes. Reading these folders:
:func:`adele.data.volume_layout.find_volumes`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import DatasetError


def image_name(case: str, channel: int, ending: str) -> str:
    """nnU-Net's name of a case's image file: ``<case>_0000<ending>`` for channel 0."""
    return f"{case}_{channel:04d}{ending}"


def nnunet_labels(classes: Sequence[str], ignore: bool = False, where: str = "dataset.json") -> dict[str, int]:
    """nnU-Net's ``labels`` {name: id} of the classes by id (id 0 is named ``background``, as nnU-Net requires),
    plus ``"ignore": len(classes)`` with ``ignore``. ``where``: the file that names the classes, for errors."""
    names = ["background", *classes[1:]]
    out: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in out or name == "ignore":
            raise DatasetError(f"{where}: class {i} is named '{name}', a name nnU-Net's labels reserve (background 0, ignore); "
                               "rename the class")
        out[name] = i
    if ignore:
        out["ignore"] = len(classes)
    return out


def write_nnunet_json(root: Path, name: str, channel_names: Mapping[str, str], classes: Sequence[str], num_training: int,
                      file_ending: str, ignore: bool = False, where: str = "dataset.json", **extra) -> dict:
    """Write ``root/dataset.json`` of an nnU-Net v2 raw dataset (keys in nnU-Net's order, then ``extra``); returns it.
    ``where``: the file that names the classes, for errors."""
    meta = {"name": name, "channel_names": dict(channel_names), "labels": nnunet_labels(classes, ignore, where),
            "numTraining": int(num_training), "file_ending": file_ending, **extra}
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
