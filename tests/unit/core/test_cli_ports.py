"""`worker` and `connectors` started on a port something else holds: one line that names the port, what
could not start and the setting to change, exit code 1, before anything connects to Kafka or ClickHouse.
(Before, uvicorn's bind error surfaced as a SystemExit once the worker had bootstrapped everything.)"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from linked_artifacts.cli import main


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("command", "setting", "what"),
    [
        (["worker"], "LINKED_ARTIFACTS_QUERY_PORT", "the worker's query API"),
        (["worker", "--no-sink"], "LINKED_ARTIFACTS_QUERY_PORT", "the worker's query API"),
        (["connectors"], "LINKED_ARTIFACTS_CONNECTORS_PORT", "the connectors"),
    ],
)
def test_a_taken_port_is_named_with_its_setting(
    command: list[str], setting: str, what: str, taken_port: int, tmp_path: Path
) -> None:
    env = {
        "LINKED_ARTIFACTS_DATA_DIR": str(tmp_path),
        "LINKED_ARTIFACTS_CONFIG": str(tmp_path / "none.toml"),
        "LINKED_ARTIFACTS_HTTP_HOST": "127.0.0.1",
        # Nothing listens here: had the command gone past the check, it would have failed on Kafka instead.
        "LINKED_ARTIFACTS_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        setting: str(taken_port),
    }
    result = CliRunner().invoke(main, command, env=env)
    assert result.exit_code == 1, result.output
    assert f"error: port {taken_port} on 127.0.0.1 is taken, so {what} cannot start" in result.output
    assert f"set {setting} to a free port" in result.output
