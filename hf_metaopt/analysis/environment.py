"""What tells two machines' runs apart: ``report["config"]["environment"]``.

Floating-point sums depend on the CPU kernels torch picks (its CPU capability), on how
many threads split them, on the GPU, and on whether deterministic algorithms are
enforced; two reports that differ in a last digit can be told apart by these facts.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["cpu_capabilities", "environment"]


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_capabilities() -> list[str]:
    """The ``ATEN_CPU_CAPABILITY`` values this CPU can run, weakest first: ``default``, then AVX2 and
    AVX-512 where the CPU has them (x86-64). torch accepts a request for AVX-512 on a CPU without it
    and then stops at an illegal instruction, so only these may be requested."""
    found = ["default"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags = _cpu_flags()
        if "avx2" in flags:
            found.append("avx2")
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            found.append("avx512")
    return found


def environment(model: nn.Module) -> dict[str, Any]:
    """``{cpu_capability, num_threads, device, cuda_device, deterministic_algorithms, platform, python}`` for ``model``.

    ``device`` is the device type of the model's first parameter (``"cpu"``, ``"cuda"``, ...;
    a model offloaded in parts reports where its first weights live); ``cuda_device`` is that
    GPU's name, ``None`` off CUDA.
    """
    parameter = next((p for p in model.parameters() if p.device.type != "meta"), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "num_threads": torch.get_num_threads(),
        "device": device.type,
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "platform": platform.machine(),
        "python": platform.python_version(),
    }
