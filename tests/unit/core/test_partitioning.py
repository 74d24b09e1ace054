from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from linked_artifacts.partitioning import partition_for, remembering_partitioner


@given(st.binary(max_size=80), st.integers(min_value=1, max_value=64))
def test_keyed_records_go_where_kafkas_default_partitioner_puts_them(key: bytes, count: int) -> None:
    partitions = list(range(count))
    expected = DefaultPartitioner()(key, partitions, partitions)
    assert remembering_partitioner(key, partitions, partitions) == expected
    assert remembering_partitioner(key, partitions, partitions) == expected  # remembered, still the same
    assert partition_for(key, count) == expected


def test_records_without_a_key_are_spread_over_available_partitions() -> None:
    chosen = {remembering_partitioner(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert chosen == {1, 3}
    assert remembering_partitioner(None, [0, 1], []) in {0, 1}
