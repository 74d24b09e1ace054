"""There is no Docker engine here, so the compose file's structure is what we can check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_every_part_of_the_system() -> None:
    assert set(_compose()["services"]) == {"kafka", "registry", "clickhouse", "worker", "connectors"}


def test_every_service_has_a_health_check_and_ports_bind_to_loopback() -> None:
    for name, service in _compose()["services"].items():
        assert "healthcheck" in service, name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_services_wait_for_what_they_depend_on() -> None:
    services = _compose()["services"]
    assert services["registry"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for app in ("worker", "connectors"):
        deps = services[app]["depends_on"]
        assert {"kafka", "registry"} <= set(deps)
        assert all(d["condition"] == "service_healthy" for d in deps.values())
    assert "clickhouse" in services["worker"]["depends_on"]


def test_app_services_restart_when_they_fail() -> None:
    # The worker exits with code 1 on a batch it cannot finish (pipeline.worker.Linker.fail): a restart folds
    # it again from the last committed offset.
    for app in ("worker", "connectors"):
        assert _compose()["services"][app]["restart"] == "on-failure", app


def test_app_services_point_at_the_compose_parts() -> None:
    for app in ("worker", "connectors"):
        env = _compose()["services"][app]["environment"]
        assert env["LINKED_ARTIFACTS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["LINKED_ARTIFACTS_REGISTRY_URL"].startswith("http://registry:8080/apis/ccompat/v7")
        assert env["LINKED_ARTIFACTS_CLICKHOUSE_URL"].startswith("http://")


def test_stateful_parts_keep_data_in_named_volumes() -> None:
    compose = _compose()
    for name in ("kafka", "clickhouse"):
        volume = compose["services"][name]["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], name


def test_image_versions_match_the_local_stack_defaults() -> None:
    from linked_artifacts.settings import Settings

    services = _compose()["services"]
    settings = Settings()
    assert services["kafka"]["image"] == f"apache/kafka:{settings.kafka_version}"
    assert services["registry"]["image"] == f"apicurio/apicurio-registry:{settings.registry_version}"
