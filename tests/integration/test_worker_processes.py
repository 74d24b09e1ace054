"""The worker service runs the Faust linker as a child process (pipeline.linker_process). From outside it is
still one service: one port for the linker's state and metrics, and a linker that never outlives its worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Services, Stack, free_port, start_service


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _linker_of(worker_pid: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in _children(worker_pid):
            if b"pipeline.linker_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        time.sleep(0.2)
    raise AssertionError(f"worker {worker_pid} started no linker process")


def _niceness(pid: int, task: int) -> int:
    return int(Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _gone(pid: int, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True
        time.sleep(0.1)
    return False


def test_the_worker_serves_its_linkers_state_and_metrics_on_its_own_port(services: Services) -> None:
    settings = services.settings
    linker = _linker_of(services.worker.pid)
    token = settings.secret("query_token")
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.query_port}", timeout=30) as query:
        deadline = time.monotonic() + 60
        while "la_worker_linker_up 1.0" not in (text := query.get("/metrics").text):
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
        # This process's sink and the child's linker, process and batch collections, in one scrape.
        for name in ("la_sink_rows", "la_worker_records_processed", "la_linker_process_cpu_seconds_total",
                     "la_gc_batches_frozen_total", "process_cpu_seconds_total"):
            assert f"\n{name}" in text, name
        assert query.get("/readyz").json() == {"ready": True, "checks": {"clickhouse": "ok", "linker": "ok"}}
        # The child checks the token too; the worker passes the caller's on.
        assert query.get("/v1/state/sha256:" + "0" * 64).status_code == 401
        missing = query.get("/v1/state/sha256:" + "0" * 64, headers={"Authorization": f"Bearer {token}"})
        assert missing.status_code == 404
        assert "no state for sha256:" in missing.json()["detail"]
    assert Path(f"/proc/{linker}").exists()
    # The process that owns ClickHouse yields to the linker (worker_sink_nice), every thread of it: but for
    # ClickHouse's memory worker, which sets its own priority when it may (as root).
    worker = services.worker.pid
    tasks = [int(t.name) for t in Path(f"/proc/{worker}/task").iterdir()
             if "(MemoryWorker)" not in Path(f"/proc/{worker}/task/{t.name}/stat").read_text()]
    assert len(tasks) > 1 and {_niceness(worker, t) for t in tasks} == {settings.worker_sink_nice} == {10}
    assert _niceness(linker, linker) == 0


def test_a_worker_killed_with_sigkill_takes_its_linker_along(stack: Stack, tmp_path: Any) -> None:
    settings = stack.settings.model_copy(
        update={"data_dir": tmp_path, "query_port": free_port(), "worker_id": "linker-child-test"}
    )
    worker = start_service(settings, "worker", ready_path="/healthz", port=settings.query_port)
    try:
        linker = _linker_of(worker.pid)
        # The worker's pid alone, not its process group: the kernel must end the child (PR_SET_PDEATHSIG).
        os.kill(worker.pid, signal.SIGKILL)
        assert _gone(linker, within=10), f"linker {linker} outlived its SIGKILLed worker"
    finally:
        worker.kill()


def test_a_worker_whose_linker_dies_stops_and_says_why(stack: Stack, tmp_path: Any) -> None:
    settings = stack.settings.model_copy(
        update={"data_dir": tmp_path, "query_port": free_port(), "worker_id": "linker-child-test"}
    )
    worker = start_service(settings, "worker", ready_path="/healthz", port=settings.query_port)
    try:
        os.kill(_linker_of(worker.pid), signal.SIGKILL)
        code = worker.wait(timeout=60)
        assert code == 1
        assert "the linker process was killed by SIGKILL" in worker.log_tail(40)
    finally:
        worker.kill()
