"""The linked view of one artifact, and the GitHub artifact-metadata read shapes.

An artifact is a family: an image index and its platform manifests (a digest nothing links is a family
of one). Any digest of the family finds the same view: storage locations with their tags over time,
builds with provenance and the workflow run, current deployments with runtime risks and who asserted
them, the alerts that apply (ranked, with reasons), the linked digests, and the recent history.

Every read goes by a sort key: ``events`` by key, the current-state tables by digest (see the
migrations), so a view costs a handful of small reads whatever the size of the history. With
``as_of`` the same view is computed at that point in time from the history.

The results are plain JSON-ready dicts (times as ISO 8601 strings), ready for the HTTP API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from history.alert_filter import CompiledFilter
from history.alerts import rank
from history.client import Warehouse, as_of_parameters, relation
from linked_artifacts.digests import normalise_digest

DEFAULT_HISTORY_LIMIT: Final = 50
MAX_HISTORY_LIMIT: Final = 1_000
# Enough alerts for a triage view of one artifact; the alert search pages through more.
LINKED_ALERT_LIMIT: Final = 100
# The tag timeline reads a digest's storage events; this bounds it for digests re-pushed endlessly.
MAX_STORAGE_EVENTS: Final = 5_000

# History reads bound by as_of use this; with no as_of they read up to the end of time.
_UNTIL: Final = "ifNull({until:Nullable(DateTime64(6, 'UTC'))}, toDateTime64('2299-12-31 00:00:00', 6, 'UTC'))"


def _iso(value: Any) -> Any:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def _json(text: str) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def record_id(*parts: str) -> int:
    """A stable integer id for a record (GitHub's APIs use integers): 53 bits of sha256 of its key,
    so it survives a JSON round trip through JavaScript."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:7], "big") >> 3


# --- family ------------------------------------------------------------------------------------------
def family_of(warehouse: Warehouse, digest: str, *, as_of: datetime | None = None) -> dict[str, Any]:
    """The family of a digest: its root (smallest image index, or itself), every digest in it, and the
    index/platform links with platform names."""
    params = {"d": digest, **as_of_parameters(as_of)}
    root_rows = warehouse.query(
        f"SELECT root FROM {relation('digest_roots', as_of)} WHERE digest = {{d:String}}", params
    ).result_rows
    root = str(root_rows[0][0]) if root_rows and root_rows[0][0] else digest
    links = warehouse.rows(
        f"SELECT digest, relation, linked_digest, platform, linked_at FROM {relation('links', as_of)} "
        "WHERE digest IN {ds:Array(String)} ORDER BY digest, relation, linked_digest",
        {"ds": sorted({digest, root}), **as_of_parameters(as_of)},
    )
    platforms = [
        {
            "digest": r["linked_digest"],
            "platform": r["platform"] or None,
            "index_digest": r["digest"],
            "linked_at": _iso(r["linked_at"]),
        }
        for r in links
        if r["relation"] == "platform" and r["digest"] == root
    ]
    indexes = sorted({r["linked_digest"] for r in links if r["relation"] == "index"} | ({root} if platforms else set()))
    digests = sorted({root, digest} | {p["digest"] for p in platforms})
    return {"root": root, "digests": digests, "index_digests": indexes, "platform_digests": platforms}


# --- storage -----------------------------------------------------------------------------------------
def _storage_history(warehouse: Warehouse, digests: Sequence[str], as_of: datetime | None) -> list[dict[str, Any]]:
    return warehouse.rows(
        "SELECT digest, event_time, storage_registry_url, storage_repository, storage_path, "
        "storage_vacated_repository, storage_vacated_path, storage_tags "
        "FROM events WHERE key IN {ds:Array(String)} AND kind = 'storage' "
        f"AND event_time <= {_UNTIL} "
        "ORDER BY event_time, event_id LIMIT 1 BY event_id LIMIT {n:UInt32}",
        {"ds": list(digests), "until": as_of, "n": MAX_STORAGE_EVENTS},
    )


def _location_timelines(history: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], dict[str, Any]]:
    """Per location: first seen, and each tag's first and last observation."""
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in history:
        locations = [(row["storage_repository"], row["storage_path"], True)]
        if row["storage_vacated_repository"]:
            locations.append((row["storage_vacated_repository"], row["storage_vacated_path"], False))
        for repository, path, observed in locations:
            key = (row["digest"], row["storage_registry_url"], repository, path)
            entry = out.setdefault(key, {"created_at": row["event_time"], "tags": {}})
            if observed:
                for tag in row["storage_tags"]:
                    seen = entry["tags"].setdefault(tag, [row["event_time"], row["event_time"]])
                    seen[1] = row["event_time"]
    return out


def _storage(warehouse: Warehouse, digests: Sequence[str], as_of: datetime | None) -> list[dict[str, Any]]:
    rows = warehouse.rows(
        f"SELECT * FROM {relation('storage', as_of)} WHERE digest IN {{ds:Array(String)}} "
        "ORDER BY digest, registry_url, repository, path",
        {"ds": list(digests), **as_of_parameters(as_of)},
    )
    timelines = _location_timelines(_storage_history(warehouse, digests, as_of))
    out = []
    for row in rows:
        body = _json(row["body"])
        timeline = timelines.get((row["digest"], row["registry_url"], row["repository"], row["path"]), {})
        tags = timeline.get("tags", {})
        out.append(
            {
                "digest": row["digest"],
                "registry": row["registry"],
                "registry_url": row["registry_url"],
                "repository": row["repository"],
                "path": row["path"] or None,
                "name": body.get("name"),
                "version": body.get("version"),
                "artifact_url": body.get("artifact_url"),
                "status": row["status"],
                "last_action": row["action"],
                "tags": list(row["tags"]),
                "tag_history": [
                    {"tag": tag, "first_seen": _iso(first), "last_seen": _iso(last)}
                    for tag, (first, last) in sorted(tags.items(), key=lambda item: (item[1][0], item[0]))
                ],
                "created_at": _iso(timeline.get("created_at", row["updated_at"])),
                "updated_at": _iso(row["updated_at"]),
            }
        )
    return out


# --- builds ------------------------------------------------------------------------------------------
def _builds(warehouse: Warehouse, digests: Sequence[str], as_of: datetime | None) -> list[dict[str, Any]]:
    subjects = warehouse.rows(
        f"SELECT * FROM {relation('build_subjects', as_of)} WHERE digest IN {{ds:Array(String)}} "
        "ORDER BY updated_at DESC, digest, repository, run_id",
        {"ds": list(digests), **as_of_parameters(as_of)},
    )
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    wanted = sorted({(r["repository"], int(r["run_id"])) for r in subjects if r["run_id"]})
    if wanted:
        # Two reads by sort key instead of builds_at, whose join would read every run.
        for run in warehouse.rows(
            f"SELECT * FROM {relation('build_runs', as_of)} "
            "WHERE repository IN {repos:Array(String)} AND run_id IN {ids:Array(UInt64)}",
            {"repos": sorted({w[0] for w in wanted}), "ids": sorted({w[1] for w in wanted}), **as_of_parameters(as_of)},
        ):
            runs[(run["repository"], int(run["run_id"]))] = run
    out = []
    for row in subjects:
        body = _json(row["body"])
        matched = runs.get((row["repository"], int(row["run_id"])))
        run_body = _json(matched["body"]) if matched else {}
        out.append(
            {
                "digest": row["digest"],
                "repository": row["repository"] or None,
                "workflow_run_id": int(row["run_id"]) or None,
                "commit": row["commit"] or (matched["commit"] if matched else "") or None,
                "ref": body.get("ref") or run_body.get("ref"),
                "builder_id": row["builder_id"] or None,
                "build_type": body.get("build_type"),
                "predicate_type": body.get("predicate_type"),
                "invocation_id": body.get("invocation_id"),
                "attestation_sha256": row["attestation_sha256"] or None,
                "subject_name": body.get("subject_name"),
                "workflow": {
                    "name": run_body.get("workflow_name") or body.get("workflow_name"),
                    "path": run_body.get("workflow_path") or body.get("workflow_path"),
                    "status": matched["status"] if matched else body.get("status"),
                    "conclusion": matched["conclusion"] if matched else body.get("conclusion"),
                    "run_attempt": run_body.get("run_attempt") or body.get("run_attempt"),
                    "run_url": run_body.get("run_url") or body.get("run_url"),
                },
                "updated_at": _iso(row["updated_at"]),
            }
        )
    return out


# --- deployments -------------------------------------------------------------------------------------
def _first_seen_in_slots(
    warehouse: Warehouse, digests: Sequence[str], as_of: datetime | None
) -> dict[tuple[str, ...], datetime]:
    rows = warehouse.query(
        "SELECT digest, deployment_logical_environment, deployment_physical_environment, deployment_cluster, "
        "deployment_name, min(event_time) FROM events "
        "WHERE key IN {ds:Array(String)} AND kind = 'deployment' "
        f"AND event_time <= {_UNTIL} "
        "GROUP BY ALL",
        {"ds": list(digests), "until": as_of},
    ).result_rows
    return {tuple(str(v) for v in row[:5]): row[5] for row in rows}


def _deployments(warehouse: Warehouse, digests: Sequence[str], as_of: datetime | None) -> list[dict[str, Any]]:
    rows = warehouse.rows(
        f"SELECT * FROM {relation('deployments', as_of)} WHERE digest IN {{ds:Array(String)}} "
        "ORDER BY logical_environment, physical_environment, cluster, deployment_name, digest",
        {"ds": list(digests), **as_of_parameters(as_of)},
    )
    first_seen = _first_seen_in_slots(warehouse, digests, as_of) if rows else {}
    out = []
    for row in rows:
        body = _json(row["body"])
        slot = (
            row["digest"],
            row["logical_environment"],
            row["physical_environment"],
            row["cluster"],
            row["deployment_name"],
        )
        out.append(
            {
                "id": record_id(*slot),
                "digest": row["digest"],
                "logical_environment": row["logical_environment"],
                "physical_environment": row["physical_environment"],
                "cluster": row["cluster"],
                "deployment_name": row["deployment_name"],
                "runtime_risks": sorted(row["runtime_risks"]),
                "risks_asserted_by": row["risks_asserted_by"] or None,
                "risks_asserted_at": _iso(row["risks_asserted_at"])
                if row["risks_asserted_by"] or row["runtime_risks"]
                else None,
                "namespace": body.get("namespace"),
                "workload": body.get("workload"),
                "container": body.get("container"),
                "image_ref": body.get("image_ref"),
                "tags": body.get("tags") or {},
                "first_seen": _iso(first_seen.get(slot, row["deployed_at"])),
                "deployed_at": _iso(row["deployed_at"]),
                "updated_at": _iso(row["updated_at"]),
            }
        )
    return out


# --- history -----------------------------------------------------------------------------------------
def _history(warehouse: Warehouse, keys: Sequence[str], as_of: datetime | None, limit: int) -> list[dict[str, Any]]:
    rows = warehouse.rows(
        "SELECT event_id, key, kind, source, digest, event_time, ingest_time, delivery_id, body FROM events "
        "WHERE key IN {keys:Array(String)} "
        f"AND event_time <= {_UNTIL} "
        "ORDER BY event_time DESC, event_id DESC LIMIT 1 BY event_id LIMIT {n:UInt32}",
        {"keys": list(keys), "until": as_of, "n": limit},
    )
    return [
        {
            "event_id": r["event_id"],
            "key": r["key"],
            "kind": r["kind"],
            "source": r["source"],
            "digest": r["digest"] or None,
            "event_time": _iso(r["event_time"]),
            "ingest_time": _iso(r["ingest_time"]),
            "delivery_id": r["delivery_id"],
            r["kind"]: _json(r["body"]),
        }
        for r in rows
    ]


# --- the view ----------------------------------------------------------------------------------------
def linked_view(
    warehouse: Warehouse,
    digest: str,
    *,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    as_of: datetime | None = None,
) -> dict[str, Any] | None:
    """The linked view of the artifact ``digest`` belongs to, or None when nothing is known about it.

    Raises ``InvalidDigest`` for a malformed digest.
    """
    digest = normalise_digest(digest)
    history_limit = max(0, min(history_limit, MAX_HISTORY_LIMIT))
    family = family_of(warehouse, digest, as_of=as_of)
    digests = family["digests"]
    storage = _storage(warehouse, digests, as_of)
    builds = _builds(warehouse, digests, as_of)
    deployments = _deployments(warehouse, digests, as_of)
    repositories = sorted({b["repository"] for b in builds if b["repository"]})
    repo_keys = ["repo:" + r for r in repositories]
    run_keys = sorted(
        {f"run:{b['repository']}/{b['workflow_run_id']}" for b in builds if b["repository"] and b["workflow_run_id"]}
    )
    _, alerts = rank(
        warehouse, CompiledFilter("1", {}, as_of, False), limit=LINKED_ALERT_LIMIT, families=[family["root"]]
    )
    history = _history(warehouse, [*digests, *repo_keys, *run_keys], as_of, history_limit) if history_limit else []
    if not (
        storage or builds or deployments or alerts or history or family["platform_digests"] or family["index_digests"]
    ):
        return None
    return {
        "digest": digest,
        "as_of": _iso(as_of),
        "family": family,
        "repositories": repositories,
        "storage": storage,
        "builds": builds,
        "deployments": deployments,
        "alerts": [a.model_dump(mode="json") for a in alerts],
        "history": history,
    }


# --- GitHub artifact metadata API shapes -------------------------------------------------------------
def storage_records(warehouse: Warehouse, digest: str) -> dict[str, Any]:
    """``GET .../artifacts/{digest}/metadata/storage-records``: this digest's storage locations."""
    digest = normalise_digest(digest)
    records = [
        {
            "id": record_id(s["digest"], s["registry_url"], s["repository"], s["path"] or ""),
            "name": s["name"],
            "digest": s["digest"],
            "artifact_url": s["artifact_url"],
            "registry_url": s["registry_url"],
            "repository": s["repository"],
            "status": s["status"],
            "created_at": s["created_at"],
            "updated_at": s["updated_at"],
        }
        for s in _storage(warehouse, [digest], None)
    ]
    return {"total_count": len(records), "storage_records": records}


def deployment_records(warehouse: Warehouse, digest: str) -> dict[str, Any]:
    """``GET .../artifacts/{digest}/metadata/deployment-records``: where this digest is deployed now."""
    digest = normalise_digest(digest)
    records = [
        {
            "id": d["id"],
            "digest": d["digest"],
            "logical_environment": d["logical_environment"],
            "physical_environment": d["physical_environment"],
            "cluster": d["cluster"],
            "deployment_name": d["deployment_name"],
            "tags": d["tags"],
            "runtime_risks": d["runtime_risks"],
            "created_at": d["first_seen"],
            "updated_at": d["updated_at"],
        }
        for d in _deployments(warehouse, [digest], None)
    ]
    return {"total_count": len(records), "deployment_records": records}
