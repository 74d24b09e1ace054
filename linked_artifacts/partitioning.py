"""Kafka's default partitioner, remembered per key.

Every producer of our topics (the connectors, the worker, Faust's changelog writes, Java clients) puts a keyed
record on partition ``murmur2(key) & 0x7fffffff % partitions``, so records of one digest meet in one
partition and the worker's table, its changelog and the enriched topic stay co-partitioned with the events.
aiokafka computes murmur2 in pure Python (~7% of the connectors' CPU under load). A key's partition never
changes while the topic keeps its partition count, and keys repeat (a digest's findings and deployments), so
the answer is remembered.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

from aiokafka.partitioner import murmur2

# ~100 bytes per entry: tens of MB at most, for the hot keys of a busy hour.
REMEMBERED_KEYS = 262_144


@functools.lru_cache(maxsize=REMEMBERED_KEYS)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def remembering_partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """aiokafka's ``DefaultPartitioner`` (its ``partitioner=`` argument), with keyed answers remembered."""
    if key is None:
        return random.choice(available or all_partitions)  # noqa: S311 - spreading load, not a secret
    return all_partitions[partition_for(key, len(all_partitions))]
