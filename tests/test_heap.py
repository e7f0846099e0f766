"""glibc's heap: with return_large_blocks a freed large block leaves the resident memory, as it does not by default
once glibc has raised its mmap threshold; the user's own MALLOC_MMAP_THRESHOLD_ stands."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from hf_metaopt.heap import return_large_blocks

ROOT = Path(__file__).resolve().parents[1]
glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

PROBE = """
import sys
import numpy as np
from hf_metaopt.heap import return_large_blocks

def resident_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

applied = return_large_blocks() if sys.argv[1] == "fixed" else False
first = np.ones(16 << 20, np.uint8)  # a mapped block; freeing it raises glibc's threshold to 16 MiB
del first
base = resident_kib()
second = np.ones(8 << 20, np.uint8)  # below the raised threshold: from the heap, unless the threshold is fixed
del second
print(applied, resident_kib() - base)
"""


def _probe(mode: str, **env) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env}).stdout.split()
    return out[0] == "True", int(out[1])


@glibc
def test_a_freed_large_block_leaves_the_resident_memory_only_with_the_threshold_fixed():
    applied, kept = _probe("default")
    assert not applied and kept > 6 * 1024  # 8 MiB stay resident in glibc's heap
    applied, kept = _probe("fixed")
    assert applied and kept < 2 * 1024


@glibc
def test_the_environment_s_own_threshold_stands():
    applied, _ = _probe("fixed", MALLOC_MMAP_THRESHOLD_="131072")
    assert not applied


def test_it_does_nothing_off_glibc(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("", ""))
    assert return_large_blocks() is False
