"""This process's place in a multi-process launch (``accelerate launch``, ``torchrun``, ``mpirun``).

Only a launched run touches :mod:`accelerate` and ``torch.distributed``: a plain command stays a group of one,
so it neither pays for a process group nor claims accelerate's process-wide state that a later
``Accelerator`` in the same process would have to agree with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

#: How long a finished process waits at the final barrier for the slowest one. Shards are dealt out in a fixed
#: order, so on a large run one process may finish hours after another; torch's default (30 min) would kill it.
BARRIER_TIMEOUT = timedelta(hours=int(os.environ.get("HF_FIQA_BARRIER_TIMEOUT_HOURS", "24")))

# What launchers set: torchrun/accelerate (WORLD_SIZE), Open MPI, MPICH/Intel MPI, MVAPICH.
_WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


@dataclass(frozen=True)
class ProcessGroup:
    """Rank and size of the group, this process's device under a launch, and a barrier (a no-op alone)."""

    rank: int = 0
    world: int = 1
    device: str | None = None  # set under a launch: the accelerator this process owns (cuda:LOCAL_RANK) or cpu
    _barrier: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process of the group got here."""
        if self._barrier is not None:
            self._barrier()

    def describe(self) -> str:
        return "" if self.world == 1 else f"process {self.rank + 1} of {self.world}"


def launched_world_size() -> int:
    """The group size a launcher announced in the environment (1 when started as a plain command)."""
    for name in _WORLD_SIZE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 1


def process_group() -> ProcessGroup:
    """The group this process belongs to: accelerate's process state under a launch, else a group of one.

    On a machine without CUDA the processes join over gloo (``PartialState(cpu=True)``), so ``accelerate
    launch --multi_gpu --num_processes N`` and ``torchrun --nproc_per_node N`` split the work over CPU processes
    with the same code that splits it over GPUs.
    """
    if launched_world_size() <= 1:
        return ProcessGroup()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available(), timeout=BARRIER_TIMEOUT)
    if state.num_processes <= 1:
        return ProcessGroup()
    return ProcessGroup(rank=state.process_index, world=state.num_processes, device=str(state.device),
                        _barrier=state.wait_for_everyone)
