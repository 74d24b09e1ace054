"""`linked-artifacts demo` as a user runs it: a dry run describes the plan without credentials or network,
and inputs that cannot work are refused with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from linked_artifacts.cli import main


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No secrets file and no tokens: a dry run must not need them.
    monkeypatch.setenv("LINKED_ARTIFACTS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LINKED_ARTIFACTS_CONNECTORS_PORT", "28999")


@pytest.mark.usefixtures("isolated")
def test_dry_run_describes_the_plan_and_sends_nothing() -> None:
    result = CliRunner().invoke(main, ["demo", "--dry-run", "--events", "3000", "--now", "2026-05-10T12:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "Would send to http://127.0.0.1:28999 (dry run, nothing sent)" in result.stdout
    for endpoint in ("github", "artifactory", "attestations", "cloudevents", "kubernetes", "scans"):
        assert f"  {endpoint} " in result.stdout
    total = next(line for line in result.stdout.splitlines() if line.strip().startswith("total"))
    assert 3_000 <= int(total.split()[-1]) <= 3_300


@pytest.mark.usefixtures("isolated")
def test_sending_without_the_generated_secrets_names_the_fix() -> None:
    result = CliRunner().invoke(main, ["demo", "--events", "100"])
    assert result.exit_code == 1
    assert "linked-artifacts up" in result.stderr


@pytest.mark.usefixtures("isolated")
def test_a_future_now_is_refused() -> None:
    result = CliRunner().invoke(main, ["demo", "--dry-run", "--now", "2999-01-01T00:00:00Z"])
    assert result.exit_code == 1
    assert "in the future" in result.stderr
