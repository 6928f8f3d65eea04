"""Handing freed C-heap memory back to the system between the large per-tensor steps of network coding."""

from __future__ import annotations


def release_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim). The per-tensor work
    allocates and frees arrays of a few megabytes, which glibc keeps in its heap once freed (with this
    and smaller search blocks, TCQ-8 on a 4.5 M-parameter encoder peaked at 140 MB over the imports
    instead of 210)."""
    global _trim
    if _trim is None:
        try:
            import ctypes

            _trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):          # not glibc: nothing to do
            _trim = False
    if _trim:
        _trim(0)


_trim = None
