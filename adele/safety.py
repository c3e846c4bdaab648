"""Write safety shared by every command that writes: nothing an input holds is ever removed.

Rules (see docs/training.md, "Safety"):

* An output folder never is, or contains, an input (dataset, run, image folder,
  config file, ...); the command refuses before writing anything.
* ``--overwrite`` replaces only a folder that the same command created: every
  output folder gets a marker file :data:`MARKER` naming the command. A folder
  without it, written by another command, or lying inside an input is never
  removed. Replace means replace: the old content does not survive.
* Dataset-like outputs (predict, export-labels, noise, data export/prepare,
  report) are assembled in a hidden sibling ``.NAME.adele-tmp-PID`` and renamed
  into place at the end: all or nothing. Leftovers of killed commands are
  cleaned (or, for a half-done swap, restored) the next time a command writes
  to the same output.
* A run folder has one writer: :func:`lock_folder` holds an OS lock
  (``fcntl.flock`` on ``RUN/.adele.lock``) for the life of the process; the
  kernel releases it when the process dies, even by SIGKILL.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Optional

from ._version import __version__
from .errors import OutputError, RunError

#: marker file written into every output folder: ``{"command": ..., "adele": version, "created": ...}``
MARKER = ".adele-output.json"
#: lock file of a folder with one writer (run folders, staged outputs while being written)
LOCK = ".adele.lock"
_TMP = ".adele-tmp-"
_OLD = ".adele-old-"
#: longest file name component most file systems accept
_NAME_MAX = 255


# ----------------------------------------------------------------------------- paths


def _resolve(p: str | Path) -> Path:
    return Path(os.path.abspath(Path(p).expanduser())).resolve(strict=False)


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _exists(p: str | Path) -> bool:
    try:
        return Path(p).exists()
    except OSError:  # e.g. a name too long to exist
        return False


def _nonempty(folder: Path, ignore: Iterable[str] = ()) -> bool:
    skip = set(ignore)
    return any(p.name not in skip for p in folder.iterdir())


def _nearest_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_location(out: str | Path, flag: str = "--out") -> None:
    """Refuse a path that cannot be created or written, before anything is written."""
    text = str(out)
    out = Path(out)
    if not text.strip():
        raise OutputError(f"{flag}: empty path; name a folder")
    if "\x00" in text:
        raise OutputError(f"{flag}: path contains a NUL byte; choose another name")
    for part in _resolve(out).parts:
        if len(os.fsencode(part)) > _NAME_MAX:
            raise OutputError(f"{flag}: the name '{part[:40]}...' is {len(os.fsencode(part))} bytes; names may have at most {_NAME_MAX}; choose a shorter one")
    if len(os.fsencode(str(_resolve(out)))) > 4000:
        raise OutputError(f"{flag}: path is longer than 4000 bytes; choose a shorter one")
    base = _nearest_existing(_resolve(out))
    if not base.is_dir():
        raise OutputError(f"{out}: cannot write there: {base} is a file, not a folder; choose another {flag}")
    if not os.access(base, os.W_OK | os.X_OK) or not _writable_fs(base):
        raise OutputError(f"{out}: cannot write under {base} (permission denied or read-only); choose a location you can write to")


def _writable_fs(folder: Path) -> bool:
    """False for read-only and pseudo file systems (/proc, /sys), where even root cannot create files."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    if st.f_flag & os.ST_RDONLY:
        return False
    # procfs and sysfs report zero blocks; creating entries there fails with odd errors
    return not (st.f_blocks == 0 and str(folder).startswith(("/proc", "/sys")))


def check_output(out: str | Path, command: str, inputs: Iterable[Optional[str | Path]] = (), overwrite: bool = False,
                 flag: str = "--out", ignore: Iterable[str] = (LOCK,)) -> Path:
    """Apply the rules of the module doc to ``out`` without touching anything; returns ``out`` as a Path.

    ``inputs``: paths the command reads (missing ones and ``None`` are skipped).
    ``ignore``: names that do not make an existing folder "not empty".
    """
    out = Path(out)
    check_location(out, flag)
    ro = _resolve(out)
    dirs_in: list[tuple[Path, Path]] = []
    for inp in inputs:
        if inp is None or str(inp) == "" or not _exists(inp):
            continue
        ri = _resolve(inp)
        if ro == ri:
            raise OutputError(f"{out}: is the input {inp}; inputs are never modified, choose another {flag}")
        if _inside(ri, ro):
            raise OutputError(f"{out}: contains the input {inp}; choose a {flag} outside it")
        if ri.is_dir():
            dirs_in.append((Path(inp), ri))
    if out.is_symlink():
        raise OutputError(f"{out}: is a symbolic link; pass the folder it points to, or another {flag}")
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out}: exists and is a file; choose another {flag}")
        if _nonempty(out, ignore):
            if not overwrite:
                raise OutputError(f"{out}: exists and is not empty; choose a new {flag} or pass --overwrite to replace it")
            for inp, ri in dirs_in:
                if _inside(ro, ri):
                    raise OutputError(f"{out}: lies inside the input {inp}; --overwrite never removes a folder inside an input; delete it yourself or choose another {flag}")
            made_by = read_marker(out)
            if made_by != command:
                what = f"was written by `adele {made_by}`" if made_by else f"has no {MARKER} marker"
                raise OutputError(f"{out}: not created by `adele {command}` ({what}); --overwrite only replaces folders that `adele {command}` "
                                  f"created; delete it yourself or choose another {flag}")
    return out


# ----------------------------------------------------------------------------- markers


def read_marker(folder: str | Path) -> Optional[str]:
    """The command named by ``folder``'s marker, or None."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    cmd = data.get("command") if isinstance(data, dict) else None
    return cmd if isinstance(cmd, str) else None


def write_marker(folder: str | Path, command: str) -> None:
    data = {"command": command, "adele": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid()}
    path = Path(folder) / MARKER
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, path)


def clear_folder(folder: str | Path, keep: Iterable[str] = (LOCK,)) -> None:
    """Remove everything in ``folder`` except the names in ``keep`` (symlinks are removed, never followed)."""
    skip = set(keep)
    for p in Path(folder).iterdir():
        if p.name in skip:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


# ----------------------------------------------------------------------------- locks


class FolderLock:
    """An exclusive ``flock`` on ``folder/.adele.lock``, held until :meth:`release` or process exit."""

    def __init__(self, folder: Path, fd: int):
        self.folder = folder
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            import fcntl

            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        _HELD.pop(_resolve(self.folder), None)


_HELD: dict[Path, FolderLock] = {}


def lock_folder(folder: str | Path, command: str) -> FolderLock:
    """Take the one-writer lock of ``folder`` (which must exist); refuse, naming the holder, if another process has it.

    Where ``fcntl`` does not exist (Windows) there is no lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return FolderLock(Path(folder), -1)

    folder = Path(folder)
    key = _resolve(folder)
    if key in _HELD:
        return _HELD[key]
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = ""
        with contextlib.suppress(OSError):
            holder = os.pread(fd, 500, 0).decode(errors="replace").strip()
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunError(f"{folder}: another process is writing here ({holder or 'unknown process'}); wait for it to finish or stop it") from None
        raise
    info = f"pid {os.getpid()}, `adele {command}`, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode() + b"\n", 0)
    lock = FolderLock(folder, fd)
    _HELD[key] = lock
    return lock


def release_all() -> None:
    """Release every lock this process holds (the CLI calls it when a command ends)."""
    for lock in list(_HELD.values()):
        lock.release()


def _is_locked(folder: Path) -> bool:
    """True if a live process holds ``folder``'s lock (this one included)."""
    return _resolve(folder) in _HELD or locked_by(folder) is not None


def locked_by(folder: str | Path) -> Optional[str]:
    """Who holds ``folder``'s lock if another process does (as written in the lock file), else None. Writes nothing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None

    folder = Path(folder)
    if _resolve(folder) in _HELD:
        return None
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        try:
            return os.pread(fd, 500, 0).decode(errors="replace").strip() or "unknown process"
        except OSError:
            return "unknown process"
    finally:
        os.close(fd)
    return None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------- temporary files


def clean_stale_temp_files(folder: str | Path) -> list[Path]:
    """Remove ``.NAME*.tmp`` files that atomic writes of killed processes left under ``folder``.

    Call only while holding ``folder``'s lock: then no live writer owns them.
    """
    removed = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                p = Path(root) / name
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


def clean_stale_siblings(out: str | Path) -> None:
    """Finish what killed commands left next to ``out``: remove dead temp folders, restore a half-swapped output."""
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return
    prefix = f".{out.name}"
    for p in parent.iterdir():
        name = p.name
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        for tag in (_TMP, _OLD):
            if rest.startswith(tag) and rest[len(tag):].isdigit():
                pid = int(rest[len(tag):])
                break
        else:
            continue
        if pid == os.getpid() or (_pid_alive(pid) and (tag == _OLD or _is_locked(p) or not (p / LOCK).exists())):
            continue
        if tag == _OLD and not out.exists() and not out.is_symlink():
            os.replace(p, out)  # killed between the two renames of a swap: the previous output comes back
        else:
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def staged_output(out: str | Path, command: str, inputs: Iterable[Optional[str | Path]] = (), overwrite: bool = False,
                  flag: str = "--out") -> Iterator[Path]:
    """Yield an empty hidden sibling of ``out`` to write into; on success it replaces ``out`` (marked), else it vanishes.

    Checks :func:`check_output` first, so nothing is created when the output is refused.
    """
    inputs = list(inputs)
    out = check_output(out, command, inputs, overwrite, flag)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create {parent} ({exc.strerror}); choose a location you can write to") from None
    clean_stale_siblings(out)
    tmp = parent / f".{out.name}{_TMP}{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
    except OSError as exc:
        raise OutputError(f"{out}: cannot write in {parent} ({exc.strerror}); choose a location you can write to") from None
    lock = lock_folder(tmp, command)
    try:
        yield tmp
        write_marker(tmp, command)
        check_output(out, command, inputs, overwrite, flag)  # nothing appeared meanwhile that may not be replaced
        _swap_in(tmp, out)
        with contextlib.suppress(OSError):
            (out / LOCK).unlink()
    finally:
        lock.release()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, out: Path) -> None:
    if out.exists() and out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}{_OLD}{os.getpid()}"
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def prepare_output_folder(out: str | Path, command: str, inputs: Iterable[Optional[str | Path]] = (), overwrite: bool = False,
                          flag: str = "--out") -> Path:
    """For outputs written in place (demo): check, empty a replaceable folder, create and mark it."""
    out = check_output(out, command, inputs, overwrite, flag)
    if out.exists():
        clear_folder(out, keep=())
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, command)
    return out


# ----------------------------------------------------------------------------- atomic files


def file_mode() -> int:
    """The mode a new file gets under this process's umask (``0o666 & ~umask``), e.g. 0o644 with umask 022."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temp_file_beside(path: str | Path) -> Path:
    """A new empty hidden ``.NAME*.tmp`` file next to ``path`` (parents created), with the umask's mode, not 0600.

    Rename it over ``path`` when complete; :func:`clean_stale_temp_files` removes those of killed processes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")  # mode 0600
    os.close(fd)
    os.chmod(tmp, file_mode())
    return Path(tmp)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None], before_replace: Optional[Callable[[], None]] = None) -> None:
    """Write ``path`` all or nothing: ``write(fh)`` fills a temporary file beside it, flushed to disk, then renamed over it.

    ``before_replace`` runs between the flush and the rename.
    """
    path = Path(path)
    tmp = temp_file_beside(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(text: str, path: str | Path) -> None:
    atomic_write_bytes(text.encode(), path)


# ----------------------------------------------------------------------------- crash log


def crash_log(exc: BaseException, argv: Iterable[str]) -> Optional[Path]:
    """Write the traceback of an unexpected exception to a log file; returns its path (None if nothing could be written)."""
    text = (f"adele {__version__}, python {sys.version.split()[0]}\nargv: {list(argv)}\ntime: {time.strftime('%Y-%m-%d %H:%M:%S')}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    candidates = [os.environ.get("ADELE_LOG_DIR"), str(Path.home() / ".cache" / "adele" / "logs"), tempfile.gettempdir()]
    for d in candidates:
        if not d:
            continue
        try:
            folder = Path(d)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"adele-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text(text)
            return path
        except OSError:
            continue
    return None
