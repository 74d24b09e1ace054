"""The state is a contract too: Avro-representable, registered, and identical after a round trip."""

from __future__ import annotations

import io

import fastavro

from linked_artifacts import avro_schema
from pipeline.state import LinkedArtifactState
from tests.unit.pipeline import factory as f


def test_state_model_is_the_registered_linked_artifact_schema() -> None:
    assert avro_schema.SCHEMA_MODELS["linked_artifact"] is LinkedArtifactState
    assert avro_schema.load("linked_artifact") == avro_schema.generate(LinkedArtifactState)


def test_rich_state_round_trips_through_avro_and_json() -> None:
    states = f.run_system(
        [
            f.storage("s", f.INDEX, 0, tags=["latest"], size=1782),
            f.storage(
                "m", f.INDEX, 1, repository="docker-prod", previous_repository="docker-local", action="moved"
            ),
            f.link("l", f.INDEX, platform_digest=f.AMD64),
            f.provenance("p", f.INDEX, 0),
            f.workflow_run("w", 1, conclusion="success"),
            f.deployment("d", f.INDEX, 1, risks=["internet-exposed"], asserted_by="defender-for-cloud"),
            f.deployment("o", f.OTHER, 2),
            f.alert("a", f.AMD64, 1, cvss=9.8, epss=0.4),
            f.alert("r", f.REPO_KEY, 1, alert_key="dependabot:1", source="dependabot"),
        ]
    )
    schema = fastavro.parse_schema(avro_schema.load("linked_artifact"))
    for state in states.values():
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema, state.model_dump())
        buffer.seek(0)
        assert LinkedArtifactState.model_validate(fastavro.schemaless_reader(buffer, schema, schema)) == state
        assert LinkedArtifactState.model_validate_json(state.model_dump_json()) == state
    assert {key for key, state in states.items() if state.inherited} >= {f.INDEX, f.AMD64}
    assert {d.kind for d in states[f.INDEX].inherited} >= {"slot-holder", "run-build"}  # superseded by OTHER
