"""Write a dataset folder atomically: build it in a hidden sibling, then rename it into place."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from ..errors import DatasetError


@contextlib.contextmanager
def staged_output(out: str | Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``out``. ``out`` must be new/empty unless ``overwrite``."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DatasetError(f"{out}: exists and is not empty; choose a new output folder or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
