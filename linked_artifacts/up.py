"""`linked-artifacts up`: the whole system on this machine, in the foreground.

Order of start: prerequisites (Java, Maven artifacts, free ports) -> Kafka -> registry -> topics and schemas
-> worker (owns ClickHouse, serves the query API) -> connectors. Ctrl-C or SIGTERM stops everything in
reverse order. A child that dies takes the system down with a message naming its log, rather than leaving
a half-running system that accepts webhooks nobody processes.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httpx

from linked_artifacts import bootstrap
from linked_artifacts.errors import StackError
from linked_artifacts.settings import GENERATED_SECRETS, Settings, ensure_secrets
from linked_artifacts.stack.local import Infrastructure, Part
from linked_artifacts.stack.ports import require_free
from linked_artifacts.stack.process import ManagedProcess

Say = Callable[[str], None]


def _service_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["LINKED_ARTIFACTS_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_servers
    env["LINKED_ARTIFACTS_REGISTRY_URL"] = settings.schema_registry_url
    env["LINKED_ARTIFACTS_DATA_DIR"] = str(settings.data_dir.resolve())
    for name in GENERATED_SECRETS:
        value = settings.secret(name)
        if value is not None:
            env["LINKED_ARTIFACTS_" + name.upper()] = value
    return env


def _wait_http(url: str, proc: ManagedProcess, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StackError(f"{proc.name} exited during start-up (log {proc.log_file}):\n{proc.log_tail()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise StackError(f"{proc.name} did not become ready within {timeout:.0f}s; see {proc.log_file}")


class System:
    def __init__(self, settings: Settings, say: Say) -> None:
        self.settings = settings
        self.say = say
        self.infra = Infrastructure(settings, say)
        self.services: list[ManagedProcess] = []
        self.parts: list[Part] = []
        self._stop = threading.Event()
        self._warehouse: object | None = None

    def _service(
        self, name: str, module: str, argv: list[str], *, ready_url: str, port_setting: str, port: int
    ) -> None:
        if importlib.util.find_spec(module) is None:
            return
        require_free(self.settings.http_host, port, what=name, setting=port_setting)
        proc = ManagedProcess(
            name,
            [sys.executable, "-m", "linked_artifacts.cli", *argv],
            log_file=self.settings.data_dir / "logs" / f"{name}.log",
            env=_service_env(self.settings),
        )
        started = time.monotonic()
        self.say(f"starting {name}")
        proc.start()
        self.services.append(proc)
        _wait_http(ready_url, proc, timeout=180)
        self.parts.append(Part(name, ready_url.rsplit("/", 1)[0], "local", time.monotonic() - started))

    def start(self) -> None:
        self.infra.prepare()
        self.settings = self.infra.start()
        self.parts.extend(self.infra.parts)
        created, ids = bootstrap.bootstrap(self.settings)
        if created:
            self.say(f"created topics: {', '.join(created)}")
        self.say("schemas registered: " + ", ".join(f"{s} (id {i})" for s, i in ids.items()))
        host = self.settings.http_host
        if importlib.util.find_spec("pipeline.worker") is not None:
            self._service(
                "worker",
                "pipeline.worker",
                ["worker"],
                ready_url=f"http://{host}:{self.settings.query_port}/healthz",
                port_setting="LINKED_ARTIFACTS_QUERY_PORT",
                port=self.settings.query_port,
            )
        else:
            self._open_clickhouse()
        self._service(
            "connectors",
            "connectors.app",
            ["connectors"],
            ready_url=f"http://{host}:{self.settings.connectors_port}/healthz",
            port_setting="LINKED_ARTIFACTS_CONNECTORS_PORT",
            port=self.settings.connectors_port,
        )

    def _open_clickhouse(self) -> None:
        # Until a worker exists, `up` itself owns the embedded ClickHouse (one process per data directory).
        import clickhouse_connect

        started = time.monotonic()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        client = clickhouse_connect.get_client(dsn=self.settings.clickhouse_dsn)
        version = client.server_version
        self._warehouse = client
        where = self.settings.clickhouse_url or self.settings.clickhouse_dsn
        self.parts.append(
            Part(
                f"clickhouse {version}",
                where,
                "embedded" if self.settings.embedded_clickhouse else "external",
                time.monotonic() - started,
            )
        )

    def watch(self) -> None:
        """Block until a signal arrives or a child dies."""
        while not self._stop.wait(1.0):
            for proc in self.services:
                if not proc.alive():
                    raise StackError(
                        f"{proc.name} exited with code {proc.exit_code()}; stopping everything. "
                        f"Its log: {proc.log_file}\n{proc.log_tail(15)}"
                    )
            for part, local in ((self.infra.kafka, "Kafka"), (self.infra.registry, "the registry")):
                if part is not None and part.process is not None and not part.process.alive():
                    raise StackError(f"{local} exited; stopping everything. Its log: {part.process.log_file}")

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        for proc in reversed(self.services):
            self.say(f"stopping {proc.name}")
            proc.stop(timeout=30)
        self.say("stopping the registry and Kafka")
        self.infra.stop()


def print_summary(system: System, say: Say, *, total: float, created_secrets: list[str]) -> None:
    s = system.settings
    say("")
    say("Linked Artifacts is running:")
    width = max(len(p.name) for p in system.parts)
    for part in system.parts:
        took = f"  (ready in {part.seconds:.1f}s)" if part.seconds else ""
        say(f"  {part.name.ljust(width)}  {part.where}  [{part.mode}]{took}")
    # The web pages sit on the query service. The token stays in the secrets file: this output often ends up
    # in a log, so it names where the token is rather than printing it.
    say(f"  web pages        http://{_browser_host(s.http_host)}:{s.query_port}/  (sign in with query_token)")
    say(f"  data directory   {s.data_dir.resolve()}")
    say(f"  logs             {(s.data_dir / 'logs').resolve()}")
    note = " (generated now)" if created_secrets else ""
    say(f"  secrets/tokens   {s.secrets_file.resolve()}{note}")
    say(f"started in {total:.1f}s. Press Ctrl-C to stop.")


def _browser_host(bind_host: str) -> str:
    return "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host  # noqa: S104 (a comparison, not a bind)


def _reap_previous_children(settings: Settings, say: Say) -> None:
    """A killed `up` sends its children SIGTERM (PR_SET_PDEATHSIG), but they may still be shutting down,
    holding the data directory (chDB allows one owner). Wait for them, then stop the stragglers."""
    path = settings.data_dir / "children.pids"
    if not path.is_file():
        return
    alive = [int(p) for p in path.read_text().split() if p.isdigit() and Path(f"/proc/{p}").exists()]
    deadline = time.monotonic() + 30
    if alive:
        say(f"waiting for {len(alive)} process(es) of the previous run to exit")
    while alive and time.monotonic() < deadline:
        time.sleep(0.3)
        alive = [p for p in alive if Path(f"/proc/{p}").exists()]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Killed is not gone yet: its ports and the data directory are free only once the process is.
    deadline = time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if Path(f"/proc/{p}").exists()]
    path.unlink(missing_ok=True)


def _record_children(system: System) -> None:
    pids = [p.pid for p in system.services] + [
        part.process.pid
        for part in (system.infra.kafka, system.infra.registry)
        if part is not None and part.process is not None and part.process.pid is not None
    ]
    (system.settings.data_dir / "children.pids").write_text(" ".join(str(p) for p in pids if p) + "\n")


def run_up(settings: Settings, say: Say) -> int:
    total_start = time.monotonic()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _reap_previous_children(settings, say)
    settings, created = ensure_secrets(settings)
    system = System(settings, say)

    started = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not started.is_set():
            # Still starting: abandon start-up at once; `finally` stops whatever already runs.
            raise KeyboardInterrupt
        system.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        system.start()
        _record_children(system)
        started.set()
        print_summary(system, say, total=time.monotonic() - total_start, created_secrets=created)
        Path(settings.data_dir / "up.pid").write_text(f"{os.getpid()}\n")
        system.watch()
        return 0
    finally:
        system.stop()
        (settings.data_dir / "up.pid").unlink(missing_ok=True)
        say("stopped.")
