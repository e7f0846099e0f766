"""The processes of a sweep: independent workers that ``accelerate launch`` / ``torchrun`` start, on one or several machines.

Launch lines (one worker per process; on a machine without GPUs accelerate's plain
``--num_processes 2`` picks its single-process launcher, so name the multi-process one)::

    accelerate launch --multi_gpu --num_processes 2 -m hf_metaopt.cli sweep --config recipes/configs/sweep_offline.yaml
    torchrun --nproc_per_node 2 -m hf_metaopt.cli sweep --config recipes/configs/sweep_offline.yaml
    # two machines, one process each, output_dir on a filesystem both share; on machine r (0 or 1):
    accelerate launch --multi_gpu --num_machines 2 --num_processes 2 --machine_rank r \
        --main_process_ip <machine 0> --main_process_port 29500 -m hf_metaopt.cli sweep --config sweep.yaml

The launcher's world is the sweep's. accelerate's ``PartialState`` gives each process its
place, its device and its own share of the pending jobs (``split_between_processes``:
contiguous shares in grid order, so each loads each of its models once); :meth:`SweepProcesses.order`
puts the other processes' jobs after it, last ones first, for a process that finishes early
(the run folders' locks decide who runs a job, :mod:`.runner`). The processes meet once, on a
gloo process group (so that processes may share a GPU), after each has listed the finished
jobs; never after that, so a process that dies (killed, its machine lost) leaves the others
running. With several processes and ``device="auto"`` each keeps one GPU visible before CUDA
starts (the local process index-th, round robin when processes outnumber GPUs).

A sweep's processes are not one data-parallel job: each runs whole analyses of its own, and
each analysis finetunes with a ``Trainer``. ``TrainingArguments`` takes its world from the
launcher's variables and offers no setting for one process inside a launched world (it would
wrap the model in ``DistributedDataParallel`` and shard the demonstrations between the
processes), so the jobs run inside :meth:`SweepProcesses.jobs`, which presents the variables of
a one-process world (accelerate's ``patch_environment``) and restores the launcher's on exit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

__all__ = ["MEETING_TIMEOUT", "ProcessLayout", "SweepProcesses", "launched_count", "one_process_launch_note", "pin_gpu"]

T = TypeVar("T")
# The one meeting of the processes comes right after each has planned the grid: a process
# that has not arrived by then has failed (or its machine started far too late).
MEETING_TIMEOUT = timedelta(minutes=30)
# The launcher's variables as a one-process world has them (LOCAL_RANK -1: not launched).
_ONE_PROCESS = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "-1", "LOCAL_WORLD_SIZE": "1"}


@dataclass(frozen=True)
class ProcessLayout:
    """This process's place among the sweep's processes (all machines) and on its machine."""

    index: int = 0
    count: int = 1
    local_index: int = 0
    local_count: int = 1

    @property
    def is_main(self) -> bool:
        return self.index == 0


def one_process_launch_note() -> str | None:
    """A note when ``accelerate launch`` asked for several processes but started one (its single-process launcher).

    That launcher sets ``MASTER_ADDR`` for a multi-process run but starts one process with no
    ``WORLD_SIZE``: on a machine without GPUs, ``--num_processes 2`` alone gives one worker.
    """
    launched_by_accelerate = "ACCELERATE_MIXED_PRECISION" in os.environ
    if launched_by_accelerate and "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ:
        return ("accelerate launch started one process; for several workers on a machine without GPUs add --multi_gpu "
                "(accelerate launch --multi_gpu --num_processes 2 -m hf_metaopt.cli sweep ...) or use torchrun --nproc_per_node 2.")
    return None


def launched_count() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 when not launched)."""
    return int(os.environ.get("WORLD_SIZE", 1))


def _visible_gpus() -> list[str]:
    """The GPUs this process may use, counted without starting CUDA."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    import torch

    # NVML-based before CUDA starts: torch does not cache a count taken before then.
    return [str(i) for i in range(torch.cuda.device_count())]


def pin_gpu(local_index: int) -> None:
    """Keep only this process's GPU visible (``CUDA_VISIBLE_DEVICES``): the ``local_index``-th, round robin when processes outnumber GPUs."""
    ids = _visible_gpus()
    if ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[local_index % len(ids)]


class SweepProcesses:
    """The launcher's world as the sweep uses it: place, share of the jobs, device, barriers.

    Must be created before CUDA starts when several processes run with ``device="auto"``
    (each keeps its own GPU). With one process, nothing is pinned and the barriers do nothing.
    """

    def __init__(self, device: str = "auto"):
        import torch
        from accelerate import PartialState

        several = launched_count() > 1
        if several and device == "auto":
            if torch.cuda.is_initialized():
                raise RuntimeError("CUDA started before the sweep could give each process its own GPU; start the sweep first.")
            pin_gpu(int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", 0))))
        cpu = device == "cpu" or not torch.accelerator.is_available()
        self.state = PartialState(cpu=cpu, **({"backend": "gloo", "timeout": MEETING_TIMEOUT} if several else {}))
        self.layout = ProcessLayout(
            self.state.process_index,
            self.state.num_processes,
            self.state.local_process_index,
            int(os.environ.get("LOCAL_WORLD_SIZE", self.state.num_processes)),
        )
        self.device = self.state.device

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous share of ``items`` (``PartialState.split_between_processes``)."""
        with self.state.split_between_processes(list(items)) as mine:
            return list(mine)

    def order(self, items: Sequence[T]) -> list[T]:
        """``items`` in the order this process takes them: its :meth:`share`, then the others' shares from their ends.

        A process that finishes its share early works back from the end of the others', where
        their owners reach last; with one process, ``items`` as given.
        """
        mine = self.share(items)
        taken = {id(item) for item in mine}
        return mine + [item for item in reversed(items) if id(item) not in taken]

    def wait_for_everyone(self) -> None:
        """Wait until every process of the sweep gets here (at most :data:`MEETING_TIMEOUT`, then an error)."""
        if self.layout.count > 1:
            # accelerate's state may since have been re-made by a job's one-process Trainer
            # (TrainingArguments resets it): the sweep's world is the process group it opened.
            import torch.distributed as dist

            dist.barrier()

    @contextmanager
    def jobs(self) -> Iterator[None]:
        """Run the block's analyses as one-process trainings: the launcher's variables are restored on exit."""
        if self.layout.count == 1:
            yield
            return
        from accelerate.utils import patch_environment

        # TrainingArguments warns that the sweep's process group is not used for DDP, as intended here.
        logger = logging.getLogger("transformers.training_args")
        quiet = _WithoutMessage("parallel_mode != ParallelMode.DISTRIBUTED")
        logger.addFilter(quiet)
        try:
            with patch_environment(**_ONE_PROCESS):
                yield
        finally:
            logger.removeFilter(quiet)


class _WithoutMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()
