"""Reading files a user names, without hanging on them or reading more than a stated limit.

A path can name a FIFO (opening it blocks until a writer appears, so a job, and then the window's
thread pool, would wait forever), a device such as /dev/zero (endless data) or a file that grows
while it is read. So every user-named input is checked with `stat` before it is opened and refused
unless it is a regular file no larger than the caller's limit; the open itself is non-blocking and
re-checked on the open descriptor, so a path swapped for a FIFO in between is refused too; and the
read stops one byte past the limit.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from workbench.core.errors import WorkbenchError

GiB = 1 << 30

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def describe_size(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def regular_file(path: str | os.PathLike, error: type[WorkbenchError] = WorkbenchError, *,
                 limit: int | None = None, what: str = "this input") -> os.stat_result:
    """The `stat` of `path` when it is a readable-looking regular file within `limit`, else `error`.

    >>> regular_file("/dev/null")
    Traceback (most recent call last):
    ...
    workbench.core.errors.WorkbenchError: /dev/null is a character device, not a regular file
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    _check(st, path, error, limit, what)
    return st


def open_regular(path: str | os.PathLike, limit: int, error: type[WorkbenchError] = WorkbenchError, *,
                 what: str = "this input") -> BinaryIO:
    """`open(path, "rb")` for a regular file of at most `limit` bytes; FIFOs, devices, folders and
    larger files are refused with `error` and a one-line reason before the open."""
    regular_file(path, error, limit=limit, what=what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        _check(os.fstat(fd), path, error, limit, what)     # the path may have been replaced since stat
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: str | os.PathLike, limit: int, error: type[WorkbenchError] = WorkbenchError, *,
                 what: str = "this input") -> bytes:
    """The bytes of a regular file of at most `limit` bytes (see `open_regular`)."""
    with open_regular(path, limit, error, what=what) as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise error(f"{path} grew past the limit of {describe_size(limit)} for {what} while it was read")
    return data


def _check(st: os.stat_result, path, error: type[WorkbenchError], limit: int | None, what: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a plain file")
        raise error(f"{path} is {kind}, not a regular file")
    if limit is not None and st.st_size > limit:
        raise error(f"{path} is {describe_size(st.st_size)}, larger than the limit of {describe_size(limit)} "
                    f"for {what}")
