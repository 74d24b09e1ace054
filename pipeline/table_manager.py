"""Faust's table manager without its fixed second of sleep at start-up.

``faust.tables.TableManager.on_start`` sleeps 1.0 s before it registers the tables' changelog channels and
starts their recovery, to let tables declared late join in. The consumer subscribes only once that is done,
so every start of the linker (and every restart after a crash) waited that second before its first fetch:
a debug log of a linker start showed "Waiting for tables to be registered..." followed 1.0 s later by the
table's start, with nothing in between.

The linker declares its one table when it builds the app (``pipeline.worker.create_app``), long before the
app starts, so there is nothing to wait for. Faust itself still refuses a table added after registration
("Too late to add tables at this point"). Checked on faust-streaming 0.15.3;
tests/unit/pipeline/test_table_manager.py pins the private step this relies on.
"""

from __future__ import annotations

from faust.tables import TableManager as FaustTableManager


class TableManager(FaustTableManager):
    """Installed with ``faust.App(TableManager=...)``."""

    async def on_start(self) -> None:
        # Faust's own on_start, less its ``await self.sleep(1.0)``.
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()
