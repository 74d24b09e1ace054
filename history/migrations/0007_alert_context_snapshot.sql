-- 0007: the alert context (one row per alert and artifact family it applies to, with everything the alert
-- filters and the ranking read: history.alerts.context_sql), kept as a stamped snapshot for the alert search.
--
-- Why: a search over every alert (the triage page, severity:critical is:open, environment:prod cvss:>7)
-- plans and runs the context query over every alert, storage location, build and deployment: ~0.45 s at 1M
-- history rows and 1.2-2.4 s at 10M. history.alerts refreshes this snapshot after a write batch (through
-- history.snapshots, under the event change stamp of 0006) and a search without as-of reads it while its
-- stamp is current; otherwise it computes as before. Same layout as artifact_summary_snapshot: one
-- partition per refresh, a last row with subject '' marking it complete. Sorted by `deployed` first: the
-- top triage questions (has:deployment, runtime-risk:, environment:) read only the deployed rows, a few
-- percent of the whole on a large history.
CREATE TABLE IF NOT EXISTS alert_context_snapshot
(
    generation UInt64,
    change_rows UInt64,
    change_hash UInt64,
    subject String,
    alert_key String,
    family String,
    scope LowCardinality(String),
    alert_repository String,
    vulnerability_id String,
    severity LowCardinality(String),
    cvss Nullable(Float64),
    epss Nullable(Float64),
    state LowCardinality(String),
    tool LowCardinality(String),
    package String,
    title String,
    updated_at DateTime64(6, 'UTC'),
    event_id String,
    environments Array(String),
    runtime_risks Array(String),
    registries Array(String),
    registry_hosts Array(String),
    repositories Array(String),
    deployed UInt8,
    severity_points UInt32,
    cvss_points UInt32,
    epss_points UInt32,
    exposure_points UInt32,
    exposure_environment String,
    exposure_risks Array(String),
    environment_points UInt32,
    score UInt64
)
ENGINE = MergeTree
PARTITION BY generation
ORDER BY (deployed, subject, alert_key, family);
