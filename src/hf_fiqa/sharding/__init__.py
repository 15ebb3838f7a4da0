"""Work over many rows, split into resumable shards and spread over processes.

``hf-fiqa embed`` and ``hf-fiqa score`` run over photo archives of millions. Both cut their row list into
shards of consecutive rows (:class:`ShardedRun`); under ``accelerate launch`` or ``torchrun`` each process takes
the shards ``rank, rank + world, ...`` (:func:`process_group`); photos are decoded, detected and aligned in
DataLoader workers (:func:`prepared_batches`) while the model runs; the main process merges the shards in
order. A shard's content depends only on its rows, never on how many processes ran, so the merged output of
any number of processes equals the single-process one, and a restart (with the same or another number of
processes) redoes only the shards whose files are missing.
"""

from .group import ProcessGroup, process_group
from .loader import ShardBatch, prepared_batches
from .run import OutputConflictError, ShardedRun, fingerprint

__all__ = ["OutputConflictError", "ProcessGroup", "ShardBatch", "ShardedRun", "fingerprint", "prepared_batches",
           "process_group"]
