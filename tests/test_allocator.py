"""The learned codec keeps freed feature maps in the C heap instead of page-faulting them in again."""

import ctypes
import sys

import pytest

from workbench.core.allocator import keep_freed_buffers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_loading_a_model_keeps_large_freed_blocks_in_the_heap():
    import resource

    import numpy as np

    from workbench.core.codecs.learned import LearnedCodec

    codec = LearnedCodec()
    rgb = (np.indices((256, 256, 3)).sum(0) * 7 % 256).astype(np.uint8)
    codec.decode(codec.encode(rgb, codec.options(quality=2)))
    assert keep_freed_buffers()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = ctypes.CDLL("libc.so.6").malloc
    block.restype = ctypes.c_void_p
    free = ctypes.CDLL("libc.so.6").free
    free.argtypes = [ctypes.c_void_p]
    for _ in range(20):                     # 64 MB: above glibc's largest automatic mmap threshold
        p = block(64 << 20)
        ctypes.memset(p, 1, 64 << 20)
        free(p)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 5 * (64 << 20) // 4096, faults     # without the setting: 20 x 16384 faults
