"""Derive Avro schemas from the pydantic event models, so the two can never drift apart.

The generated schemas are checked into ``schemas/`` (the contract other teams read). Earlier versions are
kept in ``schemas/history/<name>/vNNN.avsc``; a test proves the current schema reads data written with
every one of them (backward compatibility, transitively).
"""

from __future__ import annotations

import json
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from linked_artifacts.events import ArtifactEvent, DeadLetter
from linked_artifacts.settings import SCHEMAS_DIR
from pipeline.state import LinkedArtifactState

NAMESPACE = "dev.linkedartifacts"

# name of the .avsc file -> root model
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "artifact_event": ArtifactEvent,
    "dead_letter": DeadLetter,
    "linked_artifact": LinkedArtifactState,
}

AvroType = str | dict[str, Any] | list[Any]


def _is_optional(annotation: Any) -> tuple[bool, Any]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return True, args[0]
    return False, annotation


def _avro_type(annotation: Any, seen: set[str]) -> AvroType:
    origin = get_origin(annotation)
    if annotation is str or origin is typing.Literal:
        return "string"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "long"
    if annotation is float:
        return "double"
    if annotation is bytes:
        return "bytes"
    if annotation is datetime:
        return {"type": "long", "logicalType": "timestamp-micros"}
    if origin is list:
        (item,) = get_args(annotation)
        return {"type": "array", "items": _avro_type(item, seen)}
    if origin is dict:
        key, value = get_args(annotation)
        if key is not str:
            raise TypeError(f"Avro maps need string keys, got {key!r}")
        return {"type": "map", "values": _avro_type(value, seen)}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _record(annotation, seen)
    raise TypeError(f"no Avro mapping for {annotation!r}")


def _record(model: type[BaseModel], seen: set[str]) -> AvroType:
    name = model.__name__
    if name in seen:
        return f"{NAMESPACE}.{name}"
    seen.add(name)
    fields: list[dict[str, Any]] = []
    hints = typing.get_type_hints(model)
    for field_name, info in model.model_fields.items():
        optional, inner = _is_optional(hints[field_name])
        avro: AvroType = _avro_type(inner, seen)
        entry: dict[str, Any] = {"name": field_name}
        if optional:
            entry["type"] = ["null", avro]
            entry["default"] = None
        else:
            entry["type"] = avro
            if not info.is_required() and info.default_factory is not None:
                produced = info.default_factory()  # type: ignore[call-arg]
                entry["default"] = produced
            elif not info.is_required():
                entry["default"] = info.default
        if info.description:
            entry["doc"] = info.description
        fields.append(entry)
    record: dict[str, Any] = {"type": "record", "name": name, "namespace": NAMESPACE, "fields": fields}
    if model.__doc__:
        record["doc"] = " ".join(model.__doc__.split())
    return record


def generate(model: type[BaseModel]) -> dict[str, Any]:
    schema = _record(model, set())
    if not isinstance(schema, dict):
        raise TypeError(f"{model.__name__} did not generate a record schema")
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2) + "\n"


def schema_path(name: str, root: Path = SCHEMAS_DIR) -> Path:
    return root / f"{name}.avsc"


def load(name: str, root: Path = SCHEMAS_DIR) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_path(name, root).read_text())
    return loaded


def history(name: str, root: Path = SCHEMAS_DIR) -> list[Path]:
    """Every released version of a schema, oldest first."""
    return sorted((root / "history" / name).glob("v*.avsc"))


def write_all(root: Path = SCHEMAS_DIR) -> list[Path]:
    """Regenerate every .avsc from the models. Returns the files that changed."""
    changed = []
    for name, model in SCHEMA_MODELS.items():
        path = schema_path(name, root)
        text = render(generate(model))
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed
