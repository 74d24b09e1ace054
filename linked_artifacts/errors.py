"""The error hierarchy. Each error carries a stable code and its policy: may it be retried, does the input
go to the dead-letter topic."""

from __future__ import annotations


class LinkedArtifactsError(Exception):
    """Base of every error we raise on purpose."""

    code: str = "error"
    retriable: bool = False
    dead_letter: bool = False

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


class StackError(LinkedArtifactsError):
    """A part of the local stack cannot start. The message names the fix; no stack trace is shown."""

    code = "stack_error"
