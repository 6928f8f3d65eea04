"""How the C heap treats the large buffers of the learned codec's transforms.

glibc returns every freed block over 32 MB to the kernel (munmap) and trims its heap once 128 kB
lie free at the top, so a model that allocates and frees the same full-resolution feature maps
layer after layer has them page-faulted in, zeroed by the kernel, again and again: coding one
768 x 512 image at two rate points took 1.4 s of system time beside 6 s of user time, with
0.69 M minor page faults. Keeping up to `KEEP_BYTES` of freed memory in the heap instead cut the
faults to 0.14 M and the system time to 0.45 s (`docs/benchmarks/bench_jobs.md`). Code that
wants its memory back at a known point (network compression, tensor by tensor) trims explicitly
(`release_memory`), which these settings do not prevent."""

from __future__ import annotations

import ctypes
import functools

KEEP_BYTES = 256 << 20
"""Freed blocks up to this size stay in the heap, and this much may lie free at its top."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:                     # not glibc (macOS, Windows, musl): their allocators differ
        return None


@functools.cache
def keep_freed_buffers() -> bool:
    """Once per process, before heavy tensor work; False where the C library has no such setting."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))


def release_memory() -> None:
    """Give the heap's free pages back to the system now (glibc's malloc_trim). Network coding
    allocates and frees arrays of a few megabytes per tensor, which glibc would keep once freed
    (with this and smaller search blocks, TCQ-8 on a 4.5 M-parameter encoder peaked at 140 MB over
    the imports instead of 210)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)
