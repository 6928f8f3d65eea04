"""Compiled inner loops (numba) for the few places where work is inherently one element at a time:
the CABAC coder's adaptive bins and the trellis search's per-weight recursion. Neither vectorises,
and in pure Python they were most of a network's coding time.

Compiled code is cached on disk so only the first run on a machine pays for the compilation: next
to the module when its `__pycache__` is writable, else numba's user-wide cache (or `NUMBA_CACHE_DIR`),
which is also what a frozen (PyInstaller) app uses. Where no cache location is writable at all the
functions are compiled in memory in every process, slower to start but still correct.
"""

from __future__ import annotations

import numba


def njit(fn=None, **options):
    """`numba.njit` with the on-disk cache when one is available. No fastmath: the trellis search must
    pick exactly the levels the float64 torch search picks, so IEEE arithmetic is kept. Helpers called
    once per bin take `inline="always"`: a call that passes arrays costs reference counting each time."""
    if fn is None:
        return lambda f: njit(f, **options)
    try:
        return numba.njit(cache=True, nogil=True, **options)(fn)
    except RuntimeError:        # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True, **options)(fn)
