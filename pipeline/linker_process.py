"""The Faust linker in a process of its own, started and watched by the worker service (pipeline.service).

Why a process: the linker's batch is Python on one thread, and so is most of the sink's work (decoding,
rows), so in one process they take turns at one interpreter lock while the machine's second core idles.
The sink's writes reach ClickHouse's owner through Kafka either way, so the linker needs nothing from that
process (design.md: one process per chDB data directory).

The child serves the worker on 127.0.0.1 only (``pipeline.query_api.create_linker_api``): its health, a
key's state for ``/v1/state`` and its metrics, which the worker's ``/metrics`` includes. It gets every
setting of its parent through the environment, and the kernel kills it when its parent dies, even by
SIGKILL: a worker killed mid-batch takes its linker along, as one process would.

    python -m pipeline.linker_process --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from linked_artifacts.settings import ENV_PREFIX, Settings, as_environment, load_settings
from linked_artifacts.stack.ports import any_free_port
from linked_artifacts.stack.process import die_with_parent

log = logging.getLogger(__name__)

# How long a stopping linker may take to finish its batch and commit before it is killed: inside the 30 s
# that `up` (linked_artifacts.stack.process) gives the worker before it kills the whole process group.
STOP_SECONDS = 20.0


class LinkerProcess:
    """The linker child of a worker: started with its settings, watched, stopped gently then firmly."""

    def __init__(self, settings: Settings, *, argv: Sequence[str] | None = None) -> None:
        self.port = any_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = list(argv) if argv is not None else [
            sys.executable, "-m", "pipeline.linker_process", "--port", str(self.port)
        ]
        # Exactly the parent's settings, whatever code, file or variable set them.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        self.env = inherited | as_environment(settings)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        # Its lines go to the worker's own output (and log file), each marked "linker".
        self.proc = subprocess.Popen(  # noqa: S603 - argv built by us
            self.argv, env=self.env, preexec_fn=die_with_parent(signal.SIGKILL)  # noqa: PLW1509 - one prctl call
        )
        log.info("linker process started (pid %d, serving the worker on %s)", self.proc.pid, self.url)

    async def exited(self) -> int:
        """Wait until the process ends; its exit code (negative: the signal that ended it)."""
        if self.proc is None:
            raise RuntimeError("the linker process was not started")
        while (code := self.proc.poll()) is None:
            await asyncio.sleep(0.5)
        return code

    async def stop(self, *, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM (Faust finishes its batch, commits and leaves the group), SIGKILL after ``timeout``."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.exited(), timeout)
        except TimeoutError:
            log.warning("the linker process did not stop within %.0f s; killing it", timeout)
            proc.kill()
            await self.exited()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.linker_process",
        description="The worker's Faust linker. Started by `linked-artifacts worker`; not meant to be run alone "
        "(run `linked-artifacts worker --no-sink` for a linker of its own).",
    )
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 for the worker's requests")
    args = parser.parse_args(argv)
    from linked_artifacts import log as logs
    from pipeline.worker import run_faust

    settings = load_settings()
    logs.configure(settings, process="linker")
    run_faust(settings, api="linker", api_port=args.port)


if __name__ == "__main__":
    main()
