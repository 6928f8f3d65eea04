"""Writing outputs so that a crash or a full disk never leaves half a file or destroys an input."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Iterable

from workbench.core.errors import OutputError


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Write `data` to `path` via a temporary file in the same folder and a rename.

    `protect` lists inputs that must never be overwritten (the CLI passes the input file).
    """
    target = Path(path)
    for p in protect:
        try:
            if Path(p).exists() and target.exists() and os.path.samefile(p, target):
                raise OutputError(f"refusing to overwrite the input file {target}")
        except OSError:
            pass
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {target}: folder {folder} does not exist")
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
