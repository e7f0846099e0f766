"""glibc's heap in a process that runs analyses: large blocks handed back to the system as soon as they are freed.

glibc's ``malloc`` serves a block above its *mmap threshold* with a mapping of its own, unmapped
when the block is freed, and smaller blocks from its heap, which keeps freed memory resident for
reuse. The threshold starts at 128 KiB but rises to the size of every mapped block that is freed
(up to 32 MiB). An analysis frees large tensors from its first pass on (logits over the vocabulary,
a layer's keys and values, the finetuning's loss), so soon tensors of up to tens of MiB come from
the heap; freed in another order than they were taken, they leave gaps that the next batch's
tensors do not fit, and the resident size climbs far above what is in use: measured on
SmolLM2-135M, the peak above the model drops from about 0.7x to about 0.45x the weights with the
threshold fixed, at the same speed and with every number identical (``docs/analysis.md``, "Memory").

:func:`return_large_blocks` fixes the threshold, which turns the rise off. That is process-wide
and cannot be undone (glibc has no call that turns the rise back on), so the library never does
it by itself: ``hf-metaopt analyze`` and ``hf-metaopt sweep`` call it in their own process; a
Python user calls it, or starts Python with ``MALLOC_MMAP_THRESHOLD_=131072`` in the environment.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["MMAP_THRESHOLD", "return_large_blocks"]

MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def return_large_blocks(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have this process's ``malloc`` map every block of ``threshold`` bytes or more on its own (glibc ``mallopt``).

    Process-wide and for the rest of the process (see the module docstring). Does nothing, and
    returns ``False``, where ``malloc`` is not glibc's or the environment sets
    ``MALLOC_MMAP_THRESHOLD_`` (the user's own choice stands); returns ``True`` once applied.
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is not None or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
