"""`up` fails fast with one line that names the fix, never a stack trace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _up(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    full = {
        "PATH": str(BIN),
        "HOME": os.environ.get("HOME", "/root"),
        "LINKED_ARTIFACTS_DATA_DIR": str(tmp_path),
        **env,
    }
    return subprocess.run(
        [str(BIN / "linked-artifacts"), "up"],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_java_gives_one_line_with_the_fix(tmp_path: Path) -> None:
    result = _up({}, tmp_path)  # PATH holds only the virtualenv: no java, no mvn
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "Java is not installed" in error_lines[0] and "Fix: apt-get install" in error_lines[0]


def test_taken_port_gives_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = _up(
            {"PATH": f"{BIN}:{os.environ['PATH']}", "LINKED_ARTIFACTS_KAFKA_PORT": str(port)}, tmp_path
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error: port {port} on 127.0.0.1 is taken" in result.stderr
    assert "LINKED_ARTIFACTS_KAFKA_PORT" in result.stderr
