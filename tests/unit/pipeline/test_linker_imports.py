"""The linker process loads what it runs, not ClickHouse's client: every module it loads is start-up time, at
every restart of a worker (~0.17 s for the history modules and clickhouse_connect, measured)."""

from __future__ import annotations

import subprocess
import sys

LINKER_MODULES = "import pipeline.linker_process, pipeline.worker, pipeline.query_api, faust.contrib.asgi"


def test_the_linker_process_does_not_import_the_history_modules_or_clickhouse() -> None:
    # A fresh interpreter: this test process has imported everything already.
    probe = (
        f"import sys; {LINKER_MODULES}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('history', 'clickhouse_connect', 'chdb')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
