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
import subprocess
import sys
from pathlib import Path

import pytest

from hf_metaopt.analysis.environment import cpu_capabilities

TESTS = Path(__file__).parent
# float64 and float32 comparisons on fused-QKV GPT-2 and soft-capped, windowed Gemma 2, and the
# check that a shifted demonstration token is still caught.
SELECTION = "(gpt2 or gemma2) and (fast-prediction or float32 or shifted)"


def runs() -> list[tuple[str, int]]:
    """(capability, threads): every capability with one thread, the best one with two as well."""
    caps = cpu_capabilities()
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
