"""The linker's table manager registers its tables and starts their recovery at once, where Faust's waits a
second first. A real Faust app, table and conductor; nothing is sent to a broker."""

from __future__ import annotations

import inspect
import time
from typing import Any

from faust.tables import TableManager as FaustTableManager

from pipeline import faust_consumer, table_manager


def test_faust_still_starts_its_tables_the_way_the_override_assumes() -> None:
    # The override is Faust's on_start less one line: if Faust's changes, so must ours.
    body = [line.strip() for line in inspect.getsource(FaustTableManager.on_start).splitlines()]
    steps = [line for line in body if line.startswith(("await", "if"))]
    assert steps == [
        "await self.sleep(1.0)",
        "if not self.should_stop:",
        "await self._update_channels()",
        "await self.recovery.start()",
    ]


async def test_tables_are_registered_and_recovery_started_without_the_sleep(monkeypatch: Any) -> None:
    app = faust_consumer.App(
        "t-tables", broker="kafka://127.0.0.1:9", store="memory://", TableManager=table_manager.TableManager
    )
    table = app.Table("state", default=None, partitions=2)
    manager: Any = app.tables
    assert isinstance(manager, table_manager.TableManager)
    started: list[tuple[str, float]] = []

    def recorder(what: str) -> Any:
        async def start() -> None:
            started.append((what, time.monotonic()))

        return start

    # The table's and recovery's own starts are Faust's and talk to the broker: recorded here instead.
    monkeypatch.setattr(table, "maybe_start", recorder("table"))
    monkeypatch.setattr(manager.recovery, "start", recorder("recovery"))
    monkeypatch.setattr(app.consumer, "assignment", lambda: set())  # not subscribed yet: nothing to pause
    begun = time.monotonic()
    await manager.on_start()
    assert manager._tables_registered.is_set()  # what the consumer waits for before it subscribes
    conductor: Any = app.topics
    assert manager._channels[table] in conductor._topics  # the changelog, read by the same consumer
    assert [what for what, _ in started] == ["table", "recovery"]
    assert started[-1][1] - begun < 0.5  # Faust's own waits 1.0 s first
