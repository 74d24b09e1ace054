"""What the compiled Avro writer and reader share: turning a schema into Python source, one function per
record, and loading it.

Our schemas come from the pydantic models (``linked_artifacts.avro_schema``); the generated source holds
no text of a schema but field names, checked as identifiers or written as ``repr()`` literals.
"""

from __future__ import annotations

from typing import Any


class UnsupportedSchema(ValueError):
    """A schema feature the compiled writer or reader does not handle (fastavro still does)."""


PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class SourceCompiler:
    """Collects generated functions; a record's function is named before its fields are compiled, so a
    record can refer to itself."""

    def __init__(self) -> None:
        self.functions: list[str] = []
        self.named: dict[str, str] = {}  # a record's full name -> the name of its function
        self.counter = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def reference(self, name: str, namespace: str | None) -> str:
        """The function of a named record defined earlier in the schema."""
        found = self.named.get(full_name(name, namespace)) or self.named.get(name)
        if found is None:
            raise UnsupportedSchema(f"unknown named type {name!r}")
        return found

    def load(self, schema: Any, top: str, kind: str, helpers: dict[str, Any]) -> Any:
        """The function ``top`` of the compiled source, its module holding ``helpers``."""
        namespace = dict(helpers)
        source = "\n\n".join(self.functions)
        exec(compile(source, f"<avro {kind} {schema_name(schema)}>", "exec"), namespace)  # noqa: S102
        function = namespace[top]
        function.source = source  # for debugging a schema's generated code
        return function


def namespace_of(schema: Any) -> str | None:
    return schema.get("namespace") if isinstance(schema, dict) else None


def schema_name(schema: Any) -> str:
    return str(schema.get("name", schema.get("type"))) if isinstance(schema, dict) else str(schema)
