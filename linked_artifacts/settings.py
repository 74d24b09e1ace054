"""One typed settings model for every process.

Values come, highest priority first, from: keyword arguments, environment variables prefixed
``LINKED_ARTIFACTS_``, the TOML file named by ``LINKED_ARTIFACTS_CONFIG`` (default ``linked-artifacts.toml``
in the working directory, if present), the defaults below. Secrets that nothing sets come from the file ``up``
generates in the data directory. ``linked-artifacts settings`` prints the effective values with secrets
masked.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "LINKED_ARTIFACTS_"
REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMAS_DIR = REPO_ROOT / "schemas"

LogFormat = Literal["text", "json"]
ArtifactoryAuthMode = Literal["plain", "hmac-sha256"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

# Every secret that ``up`` generates on first start; one per source, so a leaked token is revoked alone.
GENERATED_SECRETS: tuple[str, ...] = (
    "github_webhook_secret",
    "artifactory_secret",
    "metadata_write_token",
    "metadata_read_token",
    "attestations_token",
    "cloudevents_token",
    "kubernetes_token",
    "scans_token",
    "query_token",
)


def _default_cache_dir() -> Path:
    # Downloads (Maven artifacts, the unpacked registry) are shared by every clone on the machine,
    # so a fresh clone and every CI run reuse them instead of downloading 200 MB again.
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "linked-artifacts"


class Settings(BaseSettings):
    """Every setting of the system. The README's settings table is generated from these descriptions."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        validate_default=True,
    )

    # --- where things live -------------------------------------------------------------------------------
    data_dir: Path = Field(
        default=Path("data"),
        description="Durable state: Kafka log, registry database, chDB files, generated secrets, process logs.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Download cache shared by all clones: the Maven repository and the unpacked registry.",
    )

    # --- Kafka -----------------------------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="External Kafka bootstrap servers. When unset, `up` runs a local KRaft broker.",
    )
    kafka_port: int = Field(default=19092, description="Port of the local broker's client listener.")
    kafka_controller_port: int = Field(
        default=19093, description="Port of the local KRaft controller listener."
    )
    kafka_version: str = Field(
        default="4.1.1", description="Apache Kafka version resolved from Maven Central."
    )
    kafka_heap: str = Field(
        default="768m", description="JVM heap of the local broker; sized for a 2-core, small-memory machine."
    )
    topic_partitions: int = Field(
        default=4,
        description="Partitions of the event topics: the most workers that can share the load. "
        "4 lets two workers split the work on a 2-core machine.",
    )
    topic_replication_factor: int = Field(default=1, description="Replication factor of created topics.")
    topic_prefix: str = Field(default="la.", description="Prefix of every topic the project creates.")

    # --- schema registry ---------------------------------------------------------------------------------------
    registry_url: str | None = Field(
        default=None,
        description="External Confluent-compatible registry base URL (e.g. http://host:8080/apis/ccompat/v7). "
        "When unset, `up` runs Apicurio Registry locally.",
    )
    registry_port: int = Field(default=18081, description="HTTP port of the local Apicurio Registry.")
    registry_version: str = Field(
        default="3.0.9",
        description="Apicurio Registry version from Maven Central. 3.0.x runs on Java 17; 3.1+ needs Java 21.",
    )
    registry_java: Path | None = Field(
        default=None, description="java executable for the registry, when it needs another JDK than `java`."
    )
    registry_heap: str = Field(default="384m", description="JVM heap of the local registry.")

    # --- ClickHouse ------------------------------------------------------------------------------------------
    clickhouse_url: str | None = Field(
        default=None,
        description="ClickHouse server URL (http://user:pass@host:8123/db). When unset, embedded chDB under "
        "<data_dir>/clickhouse is used.",
    )
    clickhouse_database: str = Field(default="linked_artifacts", description="ClickHouse database name.")
    history_ttl_days: int | None = Field(
        default=None,
        description="Delete history rows older than this many days (event time). Unset: keep all.",
    )

    # --- services ----------------------------------------------------------------------------------------------
    http_host: str = Field(
        default="127.0.0.1",
        description="Address the HTTP services bind to. Loopback unless you mean otherwise.",
    )
    connectors_port: int = Field(default=18000, description="Port of the connectors (webhook) service.")
    query_port: int = Field(default=18001, description="Port of the query API and web pages (in the worker).")
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024, description="Largest request body accepted; larger bodies get 413."
    )
    max_json_depth: int = Field(
        default=64, description="Deepest JSON nesting accepted; deeper input gets 422."
    )
    max_json_items: int = Field(
        default=200_000, description="Most JSON values (objects, arrays, scalars) in one body; more gets 413."
    )

    # --- per-source secrets and tokens (generated by `up` into <data_dir>/secrets.json) ----------------------
    github_webhook_secret: SecretStr | None = Field(default=None, description="GitHub webhook HMAC secret.")
    artifactory_secret: SecretStr | None = Field(
        default=None, description="JFrog Artifactory webhook secret."
    )
    artifactory_auth_mode: ArtifactoryAuthMode = Field(
        default="hmac-sha256",
        description="How X-JFrog-Event-Auth is checked: `plain` shared secret or `hmac-sha256` of the body.",
    )
    metadata_write_token: SecretStr | None = Field(
        default=None, description="Bearer token: artifact metadata API writes."
    )
    metadata_read_token: SecretStr | None = Field(
        default=None, description="Bearer token: artifact metadata API reads."
    )
    attestations_token: SecretStr | None = Field(
        default=None, description="Bearer token: /events/attestations."
    )
    cloudevents_token: SecretStr | None = Field(
        default=None, description="Bearer token: /events/cloudevents."
    )
    kubernetes_token: SecretStr | None = Field(default=None, description="Bearer token: /events/kubernetes.")
    kubernetes_cluster: str | None = Field(
        default=None, description="Cluster name for /events/kubernetes when the request names none."
    )
    kubernetes_environment: str | None = Field(
        default=None, description="Logical environment for /events/kubernetes when the request names none."
    )
    scans_token: SecretStr | None = Field(default=None, description="Bearer token: /events/scans.")
    query_token: SecretStr | None = Field(default=None, description="Bearer token: query API and web pages.")

    # --- worker and sink ---------------------------------------------------------------------------------------
    worker_id: str = Field(default="linked-artifacts", description="Faust application id (consumer group).")
    worker_batch_events: int = Field(
        default=20_000,
        ge=1,
        description="Most records the worker folds in one batch. A key touched many times in a batch is "
        "read, written and published once, so larger batches cost less per event.",
    )
    worker_batch_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Longest a batch keeps filling, from its first record, while more records wait at the "
        "broker: the most a record waits for its batch under a steady stream. Records already fetched join "
        "the batch, up to worker_batch_events.",
    )
    worker_batch_check_seconds: float = Field(
        default=0.05,
        gt=0,
        description="How often the worker looks for records waiting to be batched (fetched, or at the "
        "broker). A batch is handled as soon as none wait, so this is the longest a record on a quiet stream "
        "waits for its batch.",
    )
    worker_state_cache_states: int = Field(
        default=20_000,
        ge=1,
        description="Most decoded states the worker keeps between batches (the least recently used beyond it "
        "are decoded again from the table when needed). Bounds the worker's memory beyond the table's bytes, "
        "and the pause of its full garbage collections.",
    )
    worker_state_max_bytes: int = Field(
        # 64 KiB under the 8 MiB a record may carry (linked_artifacts.topics.RECORD_MAX_BYTES): room for the
        # record's key, headers and batch framing.
        default=8 * 1024 * 1024 - 64 * 1024,
        ge=1024,
        le=8 * 1024 * 1024 - 64 * 1024,
        description="Largest state the worker writes, in bytes. A batch that would grow a key's state past it "
        "is folded again without that key's records: the key keeps its last state, and from then on its "
        "events and the facts other keys send it go to the dead-letter topic (reason state_too_large). Its "
        "events stay in the history. Without this one key's state would stop the worker at every start.",
    )
    worker_gc_full_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often the worker runs a full garbage collection after a batch. Batches leave what they "
        "built out of the collector's sweeps (linked_artifacts.gc_tuning); a full collection frees the cyclic "
        "garbage kept with it, and pauses the worker (~1 s at a million objects).",
    )
    worker_sink_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness added to the worker's ClickHouse sink and query API (the process that owns "
        "ClickHouse), not to its linker process: on a machine short of cores the linked state keeps up first, "
        "and ClickHouse catches up when the load drops. 0 gives both the same share.",
    )
    sink_batch_rows: int = Field(
        default=5_000,
        description="Rows per ClickHouse insert. Thousands per insert keep parts few (ClickHouse wants ~1 insert/s).",
    )
    sink_flush_seconds: float = Field(
        default=1.0, description="Longest wait before a partial batch is written to ClickHouse."
    )

    # --- logs ----------------------------------------------------------------------------------------------------
    log_level: LogLevel = Field(default="INFO", description="Log level of every process.")
    log_format: LogFormat = Field(
        default="text", description="`text` for terminals, `json` for log shippers."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_path = Path(os.environ.get(ENV_PREFIX + "CONFIG", "linked-artifacts.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_path))
        return tuple(sources)

    # --- derived values ------------------------------------------------------------------------------------------
    @property
    def secrets_file(self) -> Path:
        return self.data_dir / "secrets.json"

    @property
    def kafka_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    @property
    def schema_registry_url(self) -> str:
        return self.registry_url or f"http://127.0.0.1:{self.registry_port}/apis/ccompat/v7"

    @property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse_url or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_url is None

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else None


def ensure_secrets(settings: Settings) -> tuple[Settings, list[str]]:
    """Generate any missing per-source secret, keep it in the data directory, and return fresh settings.

    Returns the new settings and the names of the secrets created now (empty on later starts).
    """
    path = settings.secrets_file
    existing: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    created = [n for n in GENERATED_SECRETS if n not in existing and settings.secret(n) is None]
    if created:
        for name in created:
            existing[name] = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
    return settings.model_copy(update=_as_secrets(existing, settings)), created


def _as_secrets(values: dict[str, str], settings: Settings) -> dict[str, SecretStr]:
    # Environment and config-file values win over the generated file.
    return {
        k: SecretStr(v) for k, v in values.items() if k in GENERATED_SECRETS and settings.secret(k) is None
    }


def as_environment(settings: Settings) -> dict[str, str]:
    """Every setting with a value as its LINKED_ARTIFACTS_* variable (secrets revealed): what a child process
    needs to run on exactly these settings, whatever code or file produced them."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = value.resolve()
        env[ENV_PREFIX + name.upper()] = str(value)
    return env


def load_settings(**overrides: Any) -> Settings:
    """Settings from every source, with the secrets `up` generated filled in where nothing else set them."""
    settings = Settings(**overrides)
    path = settings.secrets_file
    if path.is_file():
        settings = settings.model_copy(update=_as_secrets(json.loads(path.read_text()), settings))
    return settings
