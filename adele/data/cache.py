"""The cache of prepared on-disk splits (``data.cache_dir``): list its entries, delete the old ones (``adele data cache``).

An entry (:mod:`adele.data.prepared`) is a folder ``<dataset>-<split>-<key>`` whose ``meta.json``, written last,
marks it complete; a run that opens it touches ``meta.json``, so its modification time is the entry's last use.
A folder ``.<name>.tmp<pid>`` is an entry being written (or one whose writer was killed); ``.<name>.lock`` the
lock its writers share. A folder holding any other file, or a meta.json of another form, is not the cache's: it is
neither listed nor deleted. NumPy and the standard library only: listing the cache does not import torch.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

_TMP = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")
#: the files an entry (or a partial one) may hold: anything else means the folder is not the cache's
_FILE = re.compile(r"^(images|original|clean|noisy)\.(bin|idx\.npy)$|^meta\.json$")


def default_cache_dir() -> Path:
    """``data.cache_dir`` when null: the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) / adele / prepared."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "adele" / "prepared"


def cache_folder(cache_dir: Optional[str]) -> Path:
    """The folder of the prepared splits: ``data.cache_dir`` (``~`` expanded), or :func:`default_cache_dir` when null."""
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def mark_used(entry: Path) -> None:
    """Record a use of a complete entry (``meta.json``'s modification time); a read-only cache is left as it is."""
    try:
        os.utime(Path(entry) / "meta.json")
    except OSError:
        pass


@dataclass(frozen=True)
class CacheEntry:
    """One folder of the cache: a complete entry (``complete``) or a partial one (its writer's ``pid``)."""

    name: str
    path: Path
    bytes: int
    complete: bool
    last_used: float  #: seconds since the epoch (meta.json's modification time; a partial entry: the folder's)
    images: Optional[int] = None
    pid: Optional[int] = None

    @property
    def writer_alive(self) -> bool:
        """A partial entry whose writing process still runs (never removed)."""
        return self.pid is not None and _alive(self.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _only_cache_files(folder: Path) -> bool:
    """Every item of ``folder`` is a file an entry writes (a folder of anything else is never listed nor deleted)."""
    return all(f.is_file() and _FILE.match(f.name) for f in folder.iterdir())


def list_entries(root: Path) -> list[CacheEntry]:
    """The cache's entries, complete and partial, oldest use first; none when ``root`` does not exist."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if not d.is_dir():
            continue
        if not _only_cache_files(d):
            continue
        tmp = _TMP.match(d.name)
        if tmp:
            out.append(CacheEntry(tmp["name"], d, _size(d), False, d.stat().st_mtime, pid=int(tmp["pid"])))
        elif (d / "meta.json").is_file() and (d / "images.idx.npy").is_file():
            try:
                meta = json.loads((d / "meta.json").read_text())
                images = len(meta["ids"]) if {"version", "ids", "kinds"} <= set(meta) else None
            except (ValueError, TypeError, OSError):
                continue
            if images is not None:
                out.append(CacheEntry(d.name, d, _size(d), True, (d / "meta.json").stat().st_mtime, images))
    return sorted(out, key=lambda e: e.last_used)


def clear(root: Path, older_than_days: Optional[float] = None, dry_run: bool = False) -> list[CacheEntry]:
    """Delete the entries of the cache not used for ``older_than_days`` days (None: every entry), and the partial
    ones whose writer has died; never an entry being written (its lock held) nor a partial one whose writer runs.
    Returns the entries deleted (with ``dry_run``: those that would be). A run reading an entry it opened before
    keeps reading it only until it reopens it: clear the cache when no run uses it, or with ``older_than_days``."""
    root = Path(root)
    now = time.time()
    gone = []
    for e in list_entries(root):
        if not e.complete:
            if e.writer_alive:
                continue
        elif older_than_days is not None and now - e.last_used < older_than_days * 86400:
            continue
        lock_path = root / f".{e.name}.lock"
        if dry_run:
            gone.append(e)
            continue
        with open(lock_path, "a") as lock:
            try:  # a writer holds the lock while it builds the entry: leave that one
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            try:
                shutil.rmtree(e.path, ignore_errors=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        if e.complete and not any(root.glob(f".{glob_escape(e.name)}.tmp*")):
            lock_path.unlink(missing_ok=True)
        gone.append(e)
    return gone


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
