"""What every benchmark shares: an isolated `linked-artifacts up`, the machine it runs on, percentiles,
Kafka offsets and consumer lag, CPU time per process, and the JSON result file.

Isolation: each run gets a throw-away data directory and ports the kernel hands out (never the defaults
19092/18081/18000/18001), so a benchmark never touches another `up` on the same machine, and a crashed run
leaves nothing that a later run could pick up.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from linked_artifacts.settings import Settings, ensure_secrets

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
READY_LINE = "Press Ctrl-C to stop"
# First start on a fresh machine resolves ~130 MB from Maven Central; later starts take well under a minute.
START_TIMEOUT_S = 900.0
# `up` stops the connectors, the worker (which flushes the sink), the registry and Kafka in turn, 30 s each
# at most; past this the benchmark kills it and the children follow (they die with their parent).
STOP_TIMEOUT_S = 150.0
PACKAGES = ("faust-streaming", "aiokafka", "fastavro", "pydantic", "httpx", "fastapi", "uvicorn",
            "clickhouse-connect", "chdb", "chdb-core", "mode-streaming")


def say(message: str) -> None:
    print(message, flush=True)


# --- ports -----------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_pair() -> int:
    """A port p with p+1 free too: Apicurio's management interface listens on registry_port + 1."""
    for _ in range(100):
        port = _free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of ports on 127.0.0.1")


@dataclass(frozen=True)
class Ports:
    kafka: int
    controller: int
    registry: int
    connectors: int
    query: int

    @classmethod
    def pick(cls) -> Ports:
        taken: set[int] = set()
        while True:
            ports = cls(_free_port(), _free_port(), _free_pair(), _free_port(), _free_port())
            values = [ports.kafka, ports.controller, ports.registry, ports.registry + 1, ports.connectors,
                      ports.query]
            if len(set(values)) == len(values) and not taken.intersection(values):
                return ports
            taken.update(values)


# --- the system under test -------------------------------------------------------------------------------
class System:
    """`linked-artifacts up` in a subprocess, on its own ports and data directory."""

    def __init__(self, *, data_dir: Path | None = None, keep: bool = False, log_level: str = "INFO",
                 worker_id: str = "linked-artifacts", overrides: dict[str, str] | None = None) -> None:
        self.ports = Ports.pick()
        # Settings a benchmark varies (``--set worker_batch_events=10000``): the caller's environment never
        # reaches the system, so these are the one way in, for the system and for reference processes.
        self.overrides = dict(overrides or {})
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="la-bench-"))
        self.keep = keep
        self.log_level = log_level
        self.worker_id = worker_id
        self.proc: subprocess.Popen[str] | None = None
        self.tail: deque[str] = deque(maxlen=300)
        self._ready = threading.Event()
        self.versions: dict[str, str] = {}
        self.start_seconds = 0.0
        self.settings = Settings(
            data_dir=self.data_dir,
            kafka_port=self.ports.kafka,
            kafka_controller_port=self.ports.controller,
            registry_port=self.ports.registry,
            connectors_port=self.ports.connectors,
            query_port=self.ports.query,
            kafka_bootstrap_servers=f"127.0.0.1:{self.ports.kafka}",
            registry_url=f"http://127.0.0.1:{self.ports.registry}/apis/ccompat/v7",
            worker_id=worker_id,
        ).model_copy(update=Settings.model_validate_strings(self.overrides).model_dump(include=set(self.overrides)))

    # urls and credentials
    @property
    def connectors_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.connectors}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.query}"

    @property
    def kafka_servers(self) -> str:
        return self.settings.kafka_servers

    def token(self, name: str) -> str:
        value = self.settings.secret(name)
        if value is None:
            raise RuntimeError(f"{name} is missing from {self.settings.secrets_file}")
        return value

    def _env(self) -> dict[str, str]:
        # Nothing from the caller's LINKED_ARTIFACTS_* may leak in (an external Kafka, a config file, a
        # token): the system must be the isolated one this object describes. The download cache is shared.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("LINKED_ARTIFACTS_") or k == "LINKED_ARTIFACTS_CACHE_DIR"}
        env.update({
            "LINKED_ARTIFACTS_DATA_DIR": str(self.data_dir),
            "LINKED_ARTIFACTS_CONFIG": str(self.data_dir / "no-config.toml"),
            "LINKED_ARTIFACTS_KAFKA_PORT": str(self.ports.kafka),
            "LINKED_ARTIFACTS_KAFKA_CONTROLLER_PORT": str(self.ports.controller),
            "LINKED_ARTIFACTS_REGISTRY_PORT": str(self.ports.registry),
            "LINKED_ARTIFACTS_CONNECTORS_PORT": str(self.ports.connectors),
            "LINKED_ARTIFACTS_QUERY_PORT": str(self.ports.query),
            "LINKED_ARTIFACTS_WORKER_ID": self.worker_id,
            "LINKED_ARTIFACTS_LOG_LEVEL": self.log_level,
        })
        env.update(self.override_env())
        return env

    def override_env(self) -> dict[str, str]:
        return {f"LINKED_ARTIFACTS_{name.upper()}": value for name, value in self.overrides.items()}

    def _command(self) -> list[str]:
        script = Path(sys.executable).parent / "linked-artifacts"
        return [str(script), "up"] if script.is_file() else [sys.executable, "-m", "linked_artifacts.cli", "up"]

    def _read_stdout(self) -> None:
        if self.proc is None or self.proc.stdout is None:
            return
        for raw in self.proc.stdout:
            line = raw.rstrip()
            self.tail.append(line)
            if line.startswith("starting Kafka "):
                self.versions["kafka"] = line.split()[2]
            elif line.startswith("starting Apicurio Registry "):
                self.versions["apicurio_registry"] = line.split()[3]
            elif READY_LINE in line:
                self._ready.set()

    def start(self, *, timeout: float = START_TIMEOUT_S) -> None:
        say(f"starting an isolated system: data {self.data_dir}, kafka :{self.ports.kafka}, "
            f"registry :{self.ports.registry}, connectors :{self.ports.connectors}, query :{self.ports.query}")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            self._command(), cwd=REPO, env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1,
            # Its own session: a Ctrl-C meant for the benchmark reaches `up` only through stop().
            start_new_session=True,
        )
        threading.Thread(target=self._read_stdout, name="up-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.5):
            if self.proc.poll() is not None:
                raise RuntimeError(f"`linked-artifacts up` exited with {self.proc.returncode}:\n" + self._tail())
            if time.monotonic() > deadline:
                raise RuntimeError(f"`linked-artifacts up` not ready within {timeout:.0f}s:\n" + self._tail())
        self.start_seconds = time.monotonic() - started
        self.settings, _ = ensure_secrets(self.settings)  # reads the tokens `up` generated
        say(f"system ready in {self.start_seconds:.1f}s")

    def _tail(self, lines: int = 40) -> str:
        return "\n".join(list(self.tail)[-lines:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            say("stopping the system (SIGTERM to `up`)")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                say("`up` did not stop in time; killing it (its children die with it)")
                self.proc.kill()
                self.proc.wait(timeout=30)
        if self._own_dir and not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        elif self.keep:
            say(f"kept the data directory {self.data_dir}")

    def __enter__(self) -> System:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # the processes `up` runs, for CPU accounting
    def processes(self) -> dict[str, int]:
        if self.proc is None:
            return {}
        return classify(descendants(self.proc.pid)) | {"up": self.proc.pid}


# --- the machine ---------------------------------------------------------------------------------------------
def _first_match(path: str, prefix: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    return None


def _java_version() -> str | None:
    java = shutil.which("java")
    if java is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
        lines = (out.stderr or out.stdout).splitlines()
        return lines[0].strip() if lines else None
    return None


def machine(system: System | None = None) -> dict[str, Any]:
    mem_kb = _first_match("/proc/meminfo", "MemTotal")
    packages: dict[str, str] = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    info: dict[str, Any] = {
        "cpu_model": _first_match("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(int(mem_kb.split()[0]) / 1024 / 1024, 1) if mem_kb else None,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "java": _java_version(),
        "packages": packages,
    }
    if system is not None:
        info["kafka"] = system.versions.get("kafka", system.settings.kafka_version)
        info["apicurio_registry"] = system.versions.get("apicurio_registry", system.settings.registry_version)
        info["topic_partitions"] = system.settings.topic_partitions
    return info


def describe_machine(info: dict[str, Any]) -> str:
    pkgs = info.get("packages", {})
    return "\n".join([
        f"machine: {info['cpu_model']}, {info['cores']} cores ({info['cores_usable']} usable), "
        f"{info['memory_gib']} GiB RAM, load avg {info['load_average_at_start']}",
        f"         {info['os']}; {info['python']}; {info.get('java')}",
        f"         Kafka {info.get('kafka', '?')} (KRaft, 1 broker, {info.get('topic_partitions', '?')} partitions), "
        f"Apicurio {info.get('apicurio_registry', '?')}, faust-streaming {pkgs.get('faust-streaming')}, "
        f"aiokafka {pkgs.get('aiokafka')}, chdb {pkgs.get('chdb')}",
    ])


# --- numbers -------------------------------------------------------------------------------------------------
def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on an already sorted sequence."""
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def latency_summary(seconds: Iterable[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    ms = 1000.0
    return {
        "count": len(ordered),
        "mean_ms": (sum(ordered) / len(ordered) * ms) if ordered else float("nan"),
        "p50_ms": percentile(ordered, 0.50) * ms,
        "p95_ms": percentile(ordered, 0.95) * ms,
        "p99_ms": percentile(ordered, 0.99) * ms,
        "max_ms": (ordered[-1] * ms) if ordered else float("nan"),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths,
                                                                                         strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths,
                                                                                                strict=True)))
                 for row in text)
    return "\n".join(lines)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


# --- CPU time per process (from /proc: no extra dependency) ------------------------------------------------------
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, all its threads included."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def classify(pids: Iterable[int]) -> dict[str, int]:
    names: dict[str, int] = {}
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv)
        if "kafka.Kafka" in text:
            names["kafka"] = pid
        elif "apicurio" in text or "quarkus" in text or "-runner.jar" in text:
            names["registry"] = pid
        elif "linked_artifacts.cli worker" in text:
            names["worker"] = pid
        elif "pipeline.linker_process" in text:
            names["linker"] = pid  # the worker's child (pipeline.service)
        elif "linked_artifacts.cli connectors" in text:
            names["connectors"] = pid
    return names


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


class CpuMeter:
    """CPU seconds each named process spent between two calls of ``lap``, and ``other``: what the rest of
    the machine used meanwhile. On a shared machine that is the noise to read the figures against."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.pids["bench"] = os.getpid()
        self._last = self._read()

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self._last[name] = 0.0

    def _read(self) -> dict[str, float]:
        found = {name: cpu for name, pid in self.pids.items() if (cpu := cpu_seconds(pid)) is not None}
        found["_machine"] = machine_busy_seconds()
        return found

    def lap(self) -> dict[str, float]:
        now = self._read()
        spent = {name: round(now[name] - self._last.get(name, 0.0), 2) for name in now}
        machine = spent.pop("_machine")
        spent["other"] = round(max(0.0, machine - sum(spent.values())), 2)
        self._last = now
        return spent


def describe_cpu(spent: dict[str, float], seconds: float) -> str:
    parts = [f"{name} {cpu:.1f}s ({cpu / seconds * 100:.0f}%)" for name, cpu in
             sorted(spent.items(), key=lambda kv: -kv[1]) if cpu > 0.05]
    cores = len(os.sched_getaffinity(0))
    return f"CPU in {seconds:.1f}s wall ({cores} cores = {cores * 100}%): " + ", ".join(parts)


# --- Kafka offsets ---------------------------------------------------------------------------------------------
class OffsetProbe:
    """End offsets of topics and committed offsets of consumer groups, summed over partitions."""

    def __init__(self, servers: str) -> None:
        self.servers = servers
        self.consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False,
                                         client_id="bench-offset-probe")
        self.admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id="bench-offset-probe")
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        await self.consumer.start()
        await self.admin.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        # From the admin client: a consumer with no subscription does not track the topic's metadata
        # (Kafka 4 answers an empty metadata request with no topics), so its cache would stay empty.
        if topic not in self._partitions:
            described = await self.admin.describe_topics([topic])
            numbers = sorted(p["partition"] for t in described if t["topic"] == topic and t["error_code"] == 0
                             for p in t["partitions"])
            if not numbers:
                return []
            self._partitions[topic] = [TopicPartition(topic, n) for n in numbers]
        return self._partitions[topic]

    async def end(self, topic: str) -> int:
        parts = await self.partitions(topic)
        if not parts:
            return 0
        offsets = await self.consumer.end_offsets(parts)
        return int(sum(offsets.values()))

    async def committed(self, group: str) -> dict[str, int]:
        """Committed offsets of ``group`` per topic (0 for partitions it never committed)."""
        offsets = await self.admin.list_consumer_group_offsets(group)
        found: dict[str, int] = {}
        for tp, meta in offsets.items():
            found[tp.topic] = found.get(tp.topic, 0) + max(meta.offset, 0)
        return found


# --- the worker's metrics ------------------------------------------------------------------------------------
def prometheus_values(text: str, names: Iterable[str]) -> dict[str, float]:
    wanted = set(names)
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        if name in wanted:
            values[name] = float(value)
    return values


async def worker_metrics(client: httpx.AsyncClient, query_url: str) -> dict[str, float]:
    response = await client.get(f"{query_url}/metrics", timeout=5.0)
    response.raise_for_status()
    return prometheus_values(response.text, ("la_sink_rows", "la_sink_batches", "la_sink_duplicates",
                                             "la_sink_poison", "la_worker_records_processed",
                                             "la_worker_states_published", 'la_worker_record_handovers{path="direct"}',
                                             'la_worker_record_handovers{path="waited"}'))


# --- the load generator's HTTP client --------------------------------------------------------------------
# The client shares the cores with the system under test, so its own cost distorts what it measures.
# Measured on the benchmark machine against a trivial asyncio server (2 KB bodies, 16 in flight):
# httpx.AsyncClient spent ~2.0 ms CPU per request, aiohttp ~0.11 ms. At 500 requests/s httpx alone would
# take a whole core of a 2-core box, so aiohttp (already installed as a dependency of faust-streaming) is
# the default and httpx stays available for comparison.
ClientKind = Literal["aiohttp", "httpx"]
Post = Callable[[str, bytes, dict[str, str]], Awaitable[tuple[int, bytes]]]


@contextlib.asynccontextmanager
async def http_client(kind: ClientKind, base_url: str, *, concurrency: int,
                      timeout: float) -> AsyncIterator[Post]:
    """``post(path, body, headers) -> (status, body)`` over at most ``concurrency`` keep-alive connections."""
    if kind == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
            async def post_httpx(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
                response = await client.post(path, content=body, headers=headers)
                return response.status_code, response.content

            yield post_httpx
        return
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def post_aiohttp(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
            async with session.post(path, data=body, headers=headers) as response:
                return response.status, await response.read()

        yield post_aiohttp


CLIENT_ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, aiohttp.ClientError, TimeoutError, OSError)


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``--set name=value`` arguments as settings overrides, each name checked against the settings model."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().lower().removeprefix("linked_artifacts_")
        if not sep or name not in Settings.model_fields:
            raise SystemExit(f"--set {pair!r}: expected NAME=VALUE with NAME a setting (`linked-artifacts settings`)")
        overrides[name] = value
    return overrides
