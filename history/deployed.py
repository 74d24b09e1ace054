"""What is deployed now, as a snapshot the alert search can trust while nothing deployment-related changed.

The deployed scope of the alert search (``has:deployment``, ``runtime-risk:``, ``environment:``) starts from
every deployment now. Computing that from ``deployments_current`` costs hundreds of milliseconds on a large
history, so a writer refreshes a snapshot of it after each batch (migration 0004), and readers use the
snapshot only while its change stamp equals the current one; otherwise they compute it as before. A stale
or missing snapshot therefore costs time, never a wrong answer.

Call :func:`refresh_deployed_now` after each successful insert batch (the ClickHouse sink, after
``insert_events``): it returns at once when no deployment or link event arrived since the last refresh.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, NamedTuple

from history.client import Warehouse, as_of_parameters, relation

_STAMP: Final = "SELECT sum(rows), sum(hash) FROM deployment_change_state"
_DEPLOYED: Final = """
SELECT d.digest, lowerUTF8(d.logical_environment), CAST(d.runtime_risks, 'Array(String)'),
    if(r.root = '', d.digest, r.root)
FROM {deployments} AS d
LEFT JOIN {roots} AS r ON r.digest = d.digest
SETTINGS join_use_nulls = 0
"""
# Any snapshot taken under the current stamp will do: they were computed from the same deployment history.
_SNAPSHOT: Final = """
SELECT digests, environments, runtime_risks, roots FROM deployed_now_snapshot
WHERE change_rows = {rows:UInt64} AND change_hash = {hash:UInt64}
LIMIT 1
"""


class Deployed(NamedTuple):
    """One deployment now: its digest, lower-cased logical environment, runtime risks and family root."""

    digest: str
    environment: str
    runtime_risks: list[str]
    root: str


def _stamp(warehouse: Warehouse) -> tuple[int, int]:
    rows, digest = warehouse.query(_STAMP).result_rows[0]
    return int(rows or 0), int(digest or 0)


def compute_deployed(warehouse: Warehouse, as_of: datetime | None) -> list[Deployed]:
    """Every row of deployments_current (or deployments_at) with its family root, from the views."""
    sql = _DEPLOYED.format(deployments=relation("deployments", as_of), roots=relation("digest_roots", as_of))
    return [
        Deployed(str(d), str(e), list(r), str(root))
        for d, e, r, root in warehouse.query(sql, as_of_parameters(as_of)).result_rows
    ]


def compute_deployed_now(warehouse: Warehouse) -> list[Deployed]:
    """Every row of deployments_current with its family root, from the views (the slow, always-right way)."""
    return compute_deployed(warehouse, None)


def deployed_now(warehouse: Warehouse) -> list[Deployed]:
    """The deployments now: the snapshot when its stamp is current, else computed from the views."""
    rows, digest = _stamp(warehouse)
    found = warehouse.query(_SNAPSHOT, {"rows": rows, "hash": digest}).result_rows
    if found:
        digests, environments, risks, roots = found[0]
        return [Deployed(str(d), str(e), list(r), str(root)) for d, e, r, root in
                zip(digests, environments, risks, roots, strict=True)]
    return compute_deployed_now(warehouse)


def refresh_deployed_now(warehouse: Warehouse) -> bool:
    """Recompute the snapshot if a deployment or link event arrived since the last one; True if it did.

    The stamp is read before and after computing: a batch that lands in between leaves the snapshot
    unwritten (the next call writes it), so a stored snapshot never claims a stamp it has not seen.
    """
    before = _stamp(warehouse)
    if warehouse.query(_SNAPSHOT, {"rows": before[0], "hash": before[1]}).result_rows:
        return False
    rows = compute_deployed_now(warehouse)
    if _stamp(warehouse) != before:
        return False
    warehouse.insert(
        "deployed_now_snapshot",
        [[0, before[0], before[1], [r.digest for r in rows], [r.environment for r in rows],
          [r.runtime_risks for r in rows], [r.root for r in rows]]],
        column_names=("id", "change_rows", "change_hash", "digests", "environments", "runtime_risks", "roots"),
        column_type_names=("UInt8", "UInt64", "UInt64", "Array(String)", "Array(String)", "Array(Array(String))",
                           "Array(String)"),
    )
    return True
