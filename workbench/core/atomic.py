"""Writing outputs so that a crash or a full disk never leaves half a file or destroys an input.

An output is written to a hidden temporary file beside it (`.NAME.PID-RANDOM.part`) and renamed over
the target. A process killed before the rename leaves that temporary file behind; the next write of
the same name removes it once its writer is gone (its process id no longer runs) or, for a file
whose writer cannot be told, once it is an hour old.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable

from workbench.core.errors import OutputError

STALE_AFTER_S = 3600
"""Age at which a temporary file is stale even when its writer cannot be checked (no pid in the name)."""


def check_writable(path: str | os.PathLike, *, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse now what `write_bytes_atomic(path, ...)` would refuse later (a protected input, a
    missing or read-only folder, a folder in the way), so a long job fails before its work, not after."""
    target = Path(path)
    _refuse_protected(target, protect)
    folder = _folder(target)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {target}: no permission to write in {folder}")
    return target


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Write `data` to `path` via a temporary file in the same folder and a rename.

    `protect` lists inputs that must never be overwritten (the CLI passes the input file).
    """
    target = Path(path)
    _refuse_protected(target, protect)
    folder = _folder(target)
    remove_stale_parts(target)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".part", dir=folder)
        # mkstemp creates the file readable by its owner only; give it the permissions any other
        # new file would get (0666 minus the umask), or exports could not be shared or packaged.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
        tmp_name = None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OutputError(f"cannot write {target}: the disk is full") from None
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return target


def remove_stale_parts(target: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writes of `target` left beside it; returns them.

    A file whose name carries a process id is stale when no such process runs (and it has not been
    touched for a few seconds, in case the id names a process on another machine sharing the folder);
    names without an id (written by earlier versions) are stale after `STALE_AFTER_S`.
    """
    target = Path(target)
    folder = _folder(target)
    prefix, now, removed = f".{target.name}.", time.time(), []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".part")):
            continue
        middle = entry.name[len(prefix):-len(".part")]
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if not entry.is_file(follow_symlinks=False):
                continue
        except OSError:
            continue
        pid = middle.split("-", 1)[0]
        if "-" in middle and pid.isdigit():
            stale = int(pid) != os.getpid() and not _running(int(pid)) and age > 10
        else:
            stale = age > STALE_AFTER_S
        if stale:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def _running(pid: int) -> bool:
    if os.name != "posix":          # os.kill(pid, 0) would send Ctrl-C on Windows: rely on the age alone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                 # exists, owned by someone else
        return True
    return True


def _refuse_protected(target: Path, protect: Iterable[str | os.PathLike]) -> None:
    for p in protect:
        try:
            if Path(p).exists() and target.exists() and os.path.samefile(p, target):
                raise OutputError(f"refusing to overwrite the input file {target}")
        except OSError:
            pass


def _folder(target: Path) -> Path:
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {target}: folder {folder} does not exist")
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
