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

from history.alerts import RankedAlert, family_context, rank_family
from history.client import Warehouse, as_of_parameters, relation
from history.family_events import UNTIL, FamilyEvents
from linked_artifacts.digests import normalise_digest

DEFAULT_HISTORY_LIMIT: Final = 50
MAX_HISTORY_LIMIT: Final = 1_000
# Enough alerts for a triage view of one artifact; the alert search pages through more.
LINKED_ALERT_LIMIT: Final = 100
# The tag timeline reads a digest's storage events; this bounds it for digests re-pushed endlessly.
MAX_STORAGE_EVENTS: Final = 5_000

# History reads bound by as_of use this; with no as_of they read up to the end of time.
_UNTIL: Final = UNTIL


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
# The current path reads the state tables by their sort keys and keeps, per entity, the row with the highest
# version (the row FINAL would keep) in Python (see _latest), not through the *_current views: FINAL merges
# whole granules of every part even for one key, a view with joins reads the whole of its right-hand tables,
# and ORDER BY ... LIMIT 1 BY adds a sort to plan (measured on chDB 26.9 at 10M history rows: FINAL 20-50 ms
# per lookup, LIMIT 1 BY ~12 ms, a plain read by sort key 5-9 ms). The as-of path keeps the *_at views.
# Each is one table read by its sort key: joins and IN (subquery) cost more to plan and run than the reads.
def _latest(
    warehouse: Warehouse, sql: str, parameters: dict[str, Any], key: Sequence[str]
) -> list[dict[str, Any]]:
    """Rows of a state table read by ``sql`` (which selects ``version``), one per ``key``: the highest version.

    A ReplacingMergeTree keeps one row per sort key once merged; until then a few versions of an entity sit
    in different parts, and the highest is what FINAL would return (equal versions are the same event)."""
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in warehouse.rows(sql, parameters):
        identity = tuple(row[k] for k in key)
        kept = best.get(identity)
        if kept is None or row["version"] > kept["version"]:
            best[identity] = row
    for row in best.values():
        del row["version"]
    return list(best.values())


_ROOT_NOW: Final = "SELECT min(root) FROM digest_root_state WHERE digest = {d:String}"
_LINKS_NOW: Final = """
SELECT digest, relation, linked_digest, platform, linked_at, version FROM link_state
WHERE digest IN {ds:Array(String)}
"""
_ROOTS_NOW: Final = (
    "SELECT digest, min(root) FROM digest_root_state WHERE digest IN {ds:Array(String)} GROUP BY digest"
)


def _family(warehouse: Warehouse, digest: str, as_of: datetime | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The family of a digest (see :func:`family_of`) and the family root of each of its digests (an alert or
    deployment counts for the family whose root its digest has, as in the alert ranking)."""
    if as_of is None:
        found = warehouse.query(_ROOT_NOW, {"d": digest}).result_rows
        root = str(found[0][0]) if found and found[0][0] else digest
        links = sorted(
            _latest(warehouse, _LINKS_NOW, {"ds": sorted({digest, root})}, ("digest", "relation", "linked_digest")),
            key=lambda r: (r["digest"], r["relation"], r["linked_digest"]),
        )
        platform_digests = sorted({str(r["linked_digest"]) for r in links if r["relation"] == "platform"})
        roots = (
            {str(d): str(r) for d, r in warehouse.query(_ROOTS_NOW, {"ds": platform_digests}).result_rows}
            if platform_digests
            else {}
        )
    else:
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
        platform_digests = sorted({str(r["linked_digest"]) for r in links if r["relation"] == "platform"})
        roots = {
            str(d): str(r)
            for d, r in warehouse.query(
                f"SELECT digest, root FROM {relation('digest_roots', as_of)} WHERE digest IN {{ds:Array(String)}}",
                {"ds": platform_digests, **as_of_parameters(as_of)},
            ).result_rows
        } if platform_digests else {}
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
    family = {"root": root, "digests": digests, "index_digests": indexes, "platform_digests": platforms}
    # The root is its own root; a platform digest's root is the smallest index it belongs to.
    member_roots = {d: (roots.get(d) or d) if d != root else root for d in digests}
    return family, member_roots


def family_of(warehouse: Warehouse, digest: str, *, as_of: datetime | None = None) -> dict[str, Any]:
    """The family of a digest: its root (smallest image index, or itself), every digest in it, and the
    index/platform links with platform names."""
    return _family(warehouse, digest, as_of)[0]


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


_STORAGE_NOW: Final = """
SELECT digest, registry_url, repository, path, status, action, registry, registry_host, tags, body, updated_at,
    event_id, lowerUTF8(registry) AS registry_lower, version
FROM storage_state WHERE digest IN {ds:Array(String)}
"""
_LOCATION: Final = ("digest", "registry_url", "repository", "path")


def _storage(
    warehouse: Warehouse, digests: Sequence[str], as_of: datetime | None, events: FamilyEvents | None = None
) -> list[dict[str, Any]]:
    if as_of is None:
        rows = sorted(
            _latest(warehouse, _STORAGE_NOW, {"ds": list(digests)}, _LOCATION),
            key=lambda r: tuple(r[k] for k in _LOCATION),
        )
    else:
        rows = warehouse.rows(
            f"SELECT *, lowerUTF8(registry) AS registry_lower FROM {relation('storage', as_of)} "
            "WHERE digest IN {ds:Array(String)} ORDER BY digest, registry_url, repository, path",
            {"ds": list(digests), **as_of_parameters(as_of)},
        )
    timelines = _location_timelines(
        events.storage_history(MAX_STORAGE_EVENTS) if events else _storage_history(warehouse, digests, as_of)
    )
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
                # for the ranking context (linked_view drops them)
                "_registry": row["registry_lower"],
                "_registry_host": row["registry_host"],
            }
        )
    return out


# --- builds ------------------------------------------------------------------------------------------
_BUILD_SUBJECTS_NOW: Final = """
SELECT digest, repository, run_id, attestation_sha256, builder_id, commit, body, updated_at, version
FROM build_subject_state WHERE digest IN {ds:Array(String)}
"""
_BUILD_RUNS_NOW: Final = """
SELECT repository, run_id, status, conclusion, commit, body, version FROM build_run_state
WHERE repository IN {repos:Array(String)} AND run_id IN {ids:Array(UInt64)}
"""


def _build_rows(
    warehouse: Warehouse, digests: Sequence[str], as_of: datetime | None
) -> tuple[list[dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    if as_of is None:
        subject_key = ("digest", "repository", "run_id", "attestation_sha256")
        subjects = _latest(warehouse, _BUILD_SUBJECTS_NOW, {"ds": list(digests)}, subject_key)
        # ORDER BY updated_at DESC, digest, repository, run_id (two stable sorts)
        subjects.sort(key=lambda r: (r["digest"], r["repository"], r["run_id"]))
        subjects.sort(key=lambda r: r["updated_at"], reverse=True)
    else:
        subjects = warehouse.rows(
            f"SELECT * FROM {relation('build_subjects', as_of)} WHERE digest IN {{ds:Array(String)}} "
            "ORDER BY updated_at DESC, digest, repository, run_id",
            {"ds": list(digests), **as_of_parameters(as_of)},
        )
    runs = {}
    wanted = sorted({(r["repository"], int(r["run_id"])) for r in subjects if r["run_id"]})
    if wanted:
        # Two reads by sort key instead of builds_at, whose join would read every run.
        parameters = {
            "repos": sorted({w[0] for w in wanted}), "ids": sorted({w[1] for w in wanted}), **as_of_parameters(as_of)
        }
        for run in (
            _latest(warehouse, _BUILD_RUNS_NOW, parameters, ("repository", "run_id"))
            if as_of is None
            else warehouse.rows(
                f"SELECT * FROM {relation('build_runs', as_of)} "
                "WHERE repository IN {repos:Array(String)} AND run_id IN {ids:Array(UInt64)}",
                parameters,
            )
        ):
            runs[(run["repository"], int(run["run_id"]))] = run
    return subjects, runs


def _builds(warehouse: Warehouse, digests: Sequence[str], as_of: datetime | None) -> list[dict[str, Any]]:
    subjects, runs = _build_rows(warehouse, digests, as_of)
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
def _slot_of(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(row[c]) for c in ("digest", "logical_environment", "physical_environment", "cluster", "deployment_name")
    )


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


# deployments_current for a few digests, as separate reads by sort key: the latest state of each (digest, slot),
# the holders of just the slots where one is deployed, and their latest risk assertions (the view joins every
# slot's holder and every risk assertion).
_SLOT: Final = "logical_environment, physical_environment, cluster, deployment_name"
_DEPLOYMENT_STATES_NOW: Final = f"""
SELECT digest, {_SLOT}, status, body, updated_at, event_id, lowerUTF8(logical_environment) AS environment, version
FROM deployment_state WHERE digest IN {{ds:Array(String)}}
"""
_HOLDERS_NOW: Final = f"""
SELECT {_SLOT}, digest, deployed_at, version FROM deployment_holder_state
WHERE ({_SLOT}) IN {{slots:Array(Tuple(String, String, String, String))}}
"""
_RISKS_NOW: Final = f"""
SELECT digest, {_SLOT}, runtime_risks, risks_asserted_by, risks_asserted_at, version FROM deployment_risk_state
WHERE digest IN {{ds:Array(String)}}
"""
_SLOT_KEY: Final = ("logical_environment", "physical_environment", "cluster", "deployment_name")
_DIGEST_SLOT_KEY: Final = ("digest", *_SLOT_KEY)


def _deployment_rows_now(warehouse: Warehouse, digests: Sequence[str]) -> list[dict[str, Any]]:
    states = [
        r for r in _latest(warehouse, _DEPLOYMENT_STATES_NOW, {"ds": list(digests)}, _DIGEST_SLOT_KEY)
        if r["digest"] and r["status"] == "deployed"
    ]
    if not states:
        return []
    slots = sorted({_slot_of(r)[1:] for r in states})
    holders = {_slot_of(h): h for h in _latest(warehouse, _HOLDERS_NOW, {"slots": slots}, _SLOT_KEY)}
    risks = {_slot_of(r): r for r in _latest(warehouse, _RISKS_NOW, {"ds": list(digests)}, _DIGEST_SLOT_KEY)}
    rows = []
    for state in states:
        holder = holders.get(_slot_of(state))
        if holder is None:
            continue
        risk = risks.get(_slot_of(state), {})
        rows.append({
            **state,
            "runtime_risks": list(risk.get("runtime_risks", [])),
            "risks_asserted_by": risk.get("risks_asserted_by", ""),
            "risks_asserted_at": risk.get("risks_asserted_at"),
            "deployed_at": holder["deployed_at"],
        })
    return sorted(rows, key=lambda r: (*_slot_of(r)[1:], r["digest"]))


def _deployments(
    warehouse: Warehouse, digests: Sequence[str], as_of: datetime | None, events: FamilyEvents | None = None
) -> list[dict[str, Any]]:
    if as_of is None:
        rows = _deployment_rows_now(warehouse, digests)
    else:
        rows = warehouse.rows(
            f"SELECT *, lowerUTF8(logical_environment) AS environment FROM {relation('deployments', as_of)} "
            "WHERE digest IN {ds:Array(String)} "
            "ORDER BY logical_environment, physical_environment, cluster, deployment_name, digest",
            {"ds": list(digests), **as_of_parameters(as_of)},
        )
    if not rows:
        first_seen = {}
    else:
        first_seen = events.first_seen_in_slots() if events else _first_seen_in_slots(warehouse, digests, as_of)
    out = []
    for row in rows:
        body = _json(row["body"])
        slot = _slot_of(row)
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
                "_environment": row["environment"],  # for the ranking context (linked_view drops it)
            }
        )
    return out


# --- history -----------------------------------------------------------------------------------------
def _history(
    warehouse: Warehouse, keys: Sequence[str], as_of: datetime | None, limit: int, events: FamilyEvents | None = None
) -> list[dict[str, Any]]:
    if events is not None:
        rows = events.latest(limit)
        bodies = events.bodies(warehouse, [r["event_id"] for r in rows])
        rows = [{**r, "body": bodies[r["event_id"]]} for r in rows]
    else:
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


# --- alerts ------------------------------------------------------------------------------------------
_ALERTS_NOW: Final = """
SELECT subject, alert_key, scope, repository, vulnerability_id, severity, cvss, epss, state, tool, package, title,
    updated_at, event_id, version
FROM alert_state WHERE subject IN {subjects:Array(String)}
"""
# alerts_at narrowed to a few subjects: the same rows, read from the history by its sort key.
_ALERTS_AT: Final = """
SELECT key AS subject, alert_key, alert_scope AS scope, alert_repository AS repository,
    alert_vulnerability_id AS vulnerability_id, alert_severity AS severity, alert_cvss AS cvss, alert_epss AS epss,
    alert_state AS state, alert_tool AS tool, alert_package AS package, alert_title AS title,
    event_time AS updated_at, event_id
FROM events
WHERE key IN {subjects:Array(String)} AND kind = 'alert' AND event_time <= {as_of:DateTime64(6, 'UTC')}
ORDER BY version DESC LIMIT 1 BY key, alert_key
"""


def _family_alerts(
    warehouse: Warehouse,
    root: str,
    member_roots: dict[str, str],
    storage: list[dict[str, Any]],
    builds: list[dict[str, Any]],
    deployments: list[dict[str, Any]],
    as_of: datetime | None,
    events: FamilyEvents | None = None,
    history_ids: Sequence[str] = (),
) -> list[RankedAlert]:
    """The family's alerts ranked as the alert search ranks them (``rank(..., families=[root])``), from what
    the view has read already plus one read of the alerts themselves."""
    own = {d for d, r in member_roots.items() if r == root}
    build_repositories = sorted({b["repository"] for b in builds if b["repository"] and b["digest"] in own})
    context = family_context(
        deployments=[(d["_environment"], d["runtime_risks"]) for d in deployments if d["digest"] in own],
        active_storage=[
            (s["_registry"], s["_registry_host"]) for s in storage if s["digest"] in own and s["status"] == "active"
        ],
        build_repositories=build_repositories,
    )
    built = set(build_repositories)
    repo_subjects = {"repo:" + r for r in built}
    parameters = {"subjects": sorted(own | repo_subjects), **as_of_parameters(as_of)}
    rows = (
        _latest(warehouse, _ALERTS_NOW, parameters, ("subject", "alert_key"))
        if as_of is None
        else warehouse.rows(_ALERTS_AT, parameters)
    )
    wanted = [
        row
        for row in rows
        if (row["scope"] != "repository" and row["subject"] in own)
        or (row["scope"] == "repository" and row["subject"] in repo_subjects and row["repository"] in built)
    ]
    # With the family's events at hand, the page's details come from them, and the bodies of the alerts and
    # of the recent history (history_ids) in one read.
    details = (lambda page: events.alert_details(warehouse, page, also=history_ids)) if events else None
    return rank_family(warehouse, root=root, alerts=wanted, context=context, limit=LINKED_ALERT_LIMIT,
                       details=details)


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
    family, member_roots = _family(warehouse, digest, as_of)
    digests = family["digests"]
    builds = _builds(warehouse, digests, as_of)
    repositories = sorted({b["repository"] for b in builds if b["repository"]})
    repo_keys = ["repo:" + r for r in repositories]
    run_keys = sorted(
        {f"run:{b['repository']}/{b['workflow_run_id']}" for b in builds if b["repository"] and b["workflow_run_id"]}
    )
    keys = [*digests, *repo_keys, *run_keys]
    events = FamilyEvents.read(warehouse, digests=digests, keys=keys, as_of=as_of)
    storage = _storage(warehouse, digests, as_of, events)
    deployments = _deployments(warehouse, digests, as_of, events)
    history_ids = [r["event_id"] for r in events.latest(history_limit)] if events and history_limit else []
    alerts = _family_alerts(warehouse, family["root"], member_roots, storage, builds, deployments, as_of,
                            events, history_ids)
    for rows in (storage, deployments):
        for row in rows:
            for private in [k for k in row if k.startswith("_")]:
                del row[private]
    history = _history(warehouse, keys, as_of, history_limit, events) if history_limit else []
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
