"""Port checks, so a taken port is a one-line error instead of a JVM stack trace."""

from __future__ import annotations

import socket
import time

from linked_artifacts.errors import StackError


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def any_free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a child to bind a moment later (another process could take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def require_free(host: str, port: int, *, what: str, setting: str) -> None:
    if not port_is_free(host, port):
        raise StackError(
            f"port {port} on {host} is taken, so {what} cannot start. "
            f"Fix: stop whatever listens there (ss -ltnp 'sport = :{port}') or set {setting} to a free port."
        )


def wait_for_port(host: str, port: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.2)
    return False
