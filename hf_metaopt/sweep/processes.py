"""The processes of a sweep: independent workers that ``accelerate launch`` / ``torchrun`` start.

A sweep's processes are not one data-parallel job: each runs whole analyses of its own,
and each analysis finetunes with a ``Trainer``, which wraps its model in
``DistributedDataParallel`` when it sees the launcher's world (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ...), and in ``DataParallel`` when it sees several GPUs. So a worker reads
its place in the world from the launcher's variables, then hides them, and keeps only its
own GPU visible (the local process index-th; round robin when processes outnumber GPUs),
before CUDA starts.
The processes meet only at two barriers, through the launcher's key-value store.

Launch line (one worker per process; on a machine without GPUs accelerate's plain
``--num_processes 2`` uses its single-process launcher, so name the multi-process one)::

    accelerate launch --multi_gpu --num_processes 2 -m hf_metaopt.cli sweep --config recipes/configs/sweep_offline.yaml
    torchrun --nproc_per_node 2 -m hf_metaopt.cli sweep --config recipes/configs/sweep_offline.yaml
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["ProcessLayout", "worker_process"]

T = TypeVar("T")
# The variables that make accelerate (and so the Trainer) treat a process as one of a distributed job.
_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE")
# Processes that finish early wait for the others' jobs, which take hours on large models.
_WAIT = datetime.timedelta(days=7)


@dataclass(frozen=True)
class ProcessLayout:
    """This process's place among the sweep's processes (all machines) and on its machine."""

    index: int = 0
    count: int = 1
    local_index: int = 0
    local_count: int = 1

    @classmethod
    def from_env(cls) -> "ProcessLayout":
        """Read ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` (one process when unset)."""
        count = int(os.environ.get("WORLD_SIZE", 1))
        index = int(os.environ.get("RANK", 0))
        local_index = int(os.environ.get("LOCAL_RANK", index))
        return cls(index, count, local_index, int(os.environ.get("LOCAL_WORLD_SIZE", count)))

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous share of ``items``, as ``PartialState.split_between_processes`` splits them."""
        per_process, extra = divmod(len(items), self.count)
        start = self.index * per_process + min(self.index, extra)
        return list(items[start : start + per_process + (1 if self.index < extra else 0)])


def _connect(layout: ProcessLayout):
    """The launcher's store (torchrun's agent store, else one rank 0 hosts), under a prefix of our own."""
    import torch.distributed as dist

    store, _, _ = next(dist.rendezvous("env://", timeout=_WAIT))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"hf-metaopt-sweep/{attempt}/", store)


def _visible_gpus() -> list[str] | None:
    """The GPUs this process may use, without starting CUDA (``None``: unknown)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    import torch

    if not torch.backends.cuda.is_built():
        return []
    # Counted through NVML before CUDA starts (torch does not cache a count taken before then).
    return [str(i) for i in range(torch.cuda.device_count())]


def _pin_gpu(local_index: int) -> None:
    """Keep only this process's GPU visible: the ``local_index``-th, round robin when processes outnumber GPUs."""
    ids = _visible_gpus()
    if ids == []:
        return
    os.environ["CUDA_VISIBLE_DEVICES"] = ids[local_index % len(ids)] if ids else str(local_index)


@contextmanager
def worker_process(layout: ProcessLayout, *, pin_gpu: bool = True) -> Iterator[Callable[[str], None]]:
    """Make this process an independent worker for the block; yield ``barrier(name)`` over all processes.

    With several processes: connect to the launcher's store, hide the launcher's variables
    (restored on exit) and, with ``pin_gpu``, keep only this process's GPU visible. Must run
    before CUDA is initialised. With one process, nothing changes and the barrier does nothing.
    """
    if layout.count == 1:
        yield lambda name: None
        return
    import torch

    if pin_gpu and torch.cuda.is_initialized():
        raise RuntimeError("CUDA started before the sweep could give each process its own GPU; start the sweep first.")
    store = _connect(layout)
    saved = {name: os.environ.pop(name) for name in _LAUNCHER_VARIABLES if name in os.environ}
    saved_gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    if pin_gpu:
        _pin_gpu(layout.local_index)

    def barrier(name: str) -> None:
        store.set(f"{name}/{layout.index}", "1")
        store.wait([f"{name}/{i}" for i in range(layout.count)], _WAIT)

    try:
        yield barrier
    finally:
        os.environ.update(saved)
        if saved_gpus is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved_gpus
