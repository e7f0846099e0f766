"""The engine-vs-reference comparison under the CPU kernels and thread counts torch can choose.

torch picks its vectorised kernels by the CPU's capability (``DEFAULT``, ``AVX2``, ``AVX512``
on x86-64; others on ARM) and splits reductions by thread count, so float32 results differ
in the last bits from one machine to the next. The reference tests must pass whichever is
chosen (tests/test_reference_analysis.py's module docstring says how their tolerances allow
for it). Each run here is a subprocess with ``ATEN_CPU_CAPABILITY`` set (torch reads it at
start-up) and ``REFERENCE_TEST_THREADS`` giving the intra-op threads. Only capabilities the
CPU has are requested: asking for AVX-512 on a CPU without it stops the process with an
illegal instruction.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# float64 and float32 comparisons on fused-QKV GPT-2 and soft-capped, windowed Gemma 2, and the
# check that a shifted demonstration token is still caught.
SELECTION = "(gpt2 or gemma2) and (fast-prediction or float32 or shifted)"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def capabilities() -> list[str]:
    """``ATEN_CPU_CAPABILITY`` values this CPU can run: always ``default``, plus AVX2 / AVX-512 where present."""
    flags = cpu_flags()
    found = ["default"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        if "avx2" in flags:
            found.append("avx2")
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            found.append("avx512")
    return found


def runs() -> list[tuple[str, int]]:
    """(capability, threads): every capability with one thread, the best one with two as well."""
    caps = capabilities()
    return [(cap, 1) for cap in caps] + [(caps[-1], 2)]


@pytest.mark.slow
@pytest.mark.parametrize("capability,threads", runs(), ids=lambda v: str(v))
def test_reference_comparison_under_cpu_kernels(capability, threads):
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "REFERENCE_TEST_THREADS": str(threads)}
    check = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip().lower().startswith(capability if capability != "default" else "default")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(TESTS / "test_reference_analysis.py"), "-q", "-p", "no:cacheprovider",
         "-k", SELECTION],
        env=env, capture_output=True, text=True, timeout=900, cwd=TESTS.parent,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, f"{capability}, {threads} thread(s): {summary}\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
    assert " passed" in summary and "failed" not in summary, summary
