from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from linked_artifacts.cli import settings_markdown
from linked_artifacts.settings import GENERATED_SECRETS, Settings, as_environment, ensure_secrets, load_settings


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKED_ARTIFACTS_KAFKA_PORT", "29999")
    monkeypatch.setenv("LINKED_ARTIFACTS_ARTIFACTORY_AUTH_MODE", "plain")
    settings = Settings()
    assert settings.kafka_port == 29999 and settings.artifactory_auth_mode == "plain"


def test_config_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "la.toml"
    config.write_text("kafka_port = 20000\nquery_port = 20001\n")
    monkeypatch.setenv("LINKED_ARTIFACTS_CONFIG", str(config))
    monkeypatch.setenv("LINKED_ARTIFACTS_QUERY_PORT", "20002")
    settings = Settings()
    assert settings.kafka_port == 20000 and settings.query_port == 20002


def test_enum_settings_refuse_unknown_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKED_ARTIFACTS_ARTIFACTORY_AUTH_MODE", "sha1")
    with pytest.raises(ValueError, match="artifactory_auth_mode"):
        Settings()


def test_first_start_generates_one_secret_per_source_and_keeps_them(tmp_path: Path) -> None:
    settings, created = ensure_secrets(Settings(data_dir=tmp_path))
    assert sorted(created) == sorted(GENERATED_SECRETS)
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    values = {name: settings.secret(name) for name in GENERATED_SECRETS}
    assert len(set(values.values())) == len(GENERATED_SECRETS)
    again, created_again = ensure_secrets(Settings(data_dir=tmp_path))
    assert created_again == [] and {n: again.secret(n) for n in GENERATED_SECRETS} == values
    assert load_settings(data_dir=tmp_path).secret("query_token") == values["query_token"]


def test_environment_secret_wins_over_generated_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secrets.json").write_text(json.dumps({"scans_token": "from-file"}))
    monkeypatch.setenv("LINKED_ARTIFACTS_SCANS_TOKEN", "from-env")
    assert load_settings(data_dir=tmp_path).secret("scans_token") == "from-env"


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"LINKED_ARTIFACTS_{name.upper()}" in readme, (
            f"README lacks {name}; paste `settings --markdown`"
        )
    assert settings_markdown().splitlines()[2] in readme


def test_a_child_process_gets_exactly_its_parents_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the worker service hands its linker process: set in code, read back from the environment alone."""
    monkeypatch.chdir(tmp_path)  # no linked-artifacts.toml here
    parent = Settings(data_dir=tmp_path / "data").model_copy(
        update={"worker_id": "w-7", "query_port": 18_123, "sink_flush_seconds": 0.25, "log_format": "json",
                "query_token": SecretStr("s3cret"), "clickhouse_url": None}
    )
    env = as_environment(parent)
    assert "LINKED_ARTIFACTS_CLICKHOUSE_URL" not in env  # unset stays unset
    for name in list(os.environ):
        if name.startswith("LINKED_ARTIFACTS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert child.model_dump() == parent.model_dump()
    assert child.secret("query_token") == "s3cret"
