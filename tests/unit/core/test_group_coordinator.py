"""A Kafka that never names a group coordinator (its offsets topic asks for more replicas than it has
brokers) stops bootstrap with an error that says where to look, after the wait, not at the first "not
available" that every fresh Kafka answers. The admin client is replaced: no broker here answers like that
(tests/integration/test_topics.py asks the real one)."""

from __future__ import annotations

from typing import Any

import aiokafka.admin
import pytest
from aiokafka.errors import CoordinatorNotAvailableError

from linked_artifacts import bootstrap
from linked_artifacts.errors import StackError
from linked_artifacts.settings import Settings


class Admin:
    """Answers "not available" ``failures`` times, then names broker 1."""

    failures = 0
    asked = 0
    closed = False

    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        Admin.closed = True

    async def find_coordinator(self, group_id: str) -> int:
        Admin.asked += 1
        if Admin.asked <= Admin.failures:
            raise CoordinatorNotAvailableError()
        return 1


@pytest.fixture(autouse=True)
def admin(monkeypatch: pytest.MonkeyPatch) -> None:
    Admin.asked, Admin.closed = 0, False
    monkeypatch.setattr(aiokafka.admin, "AIOKafkaAdminClient", Admin)


async def test_a_fresh_kafka_is_asked_again_until_it_names_one(tmp_path: Any) -> None:
    Admin.failures = 3
    assert await bootstrap.wait_for_group_coordinator(Settings(data_dir=tmp_path), timeout=10) == 1
    assert Admin.asked == 4 and Admin.closed


async def test_a_kafka_that_never_names_one_is_an_error_naming_the_fix(tmp_path: Any) -> None:
    Admin.failures = 10**6
    settings = Settings(data_dir=tmp_path, worker_id="linker-x")
    with pytest.raises(StackError) as raised:
        await bootstrap.wait_for_group_coordinator(settings, timeout=0.3)
    message = raised.value.message
    assert "named no coordinator for consumer group 'linker-x' within 0.3 s" in message
    assert "__consumer_offsets" in message and "offsets.topic.replication.factor" in message
    assert Admin.asked > 1 and Admin.closed  # asked again meanwhile, and the client closed
