"""Linked Artifacts: code-to-cloud traceability with full history."""
