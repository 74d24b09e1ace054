-- 0001: the event history. One row per accepted ArtifactEvent; the only table anything writes to.
--
-- Bitemporal: event_time is when it happened (the source's clock), ingest_time when the connector
-- accepted it. Every current-state table and view is derived from these rows.
--
-- Sort key (key, event_time, event_id): the linked view and the GitHub-shaped reads scan one digest
-- (or repo:owner/name) at a time, in time order. The projection events_by_time keeps a second copy
-- ordered by time for exports and time-range questions, so neither scan reads the whole table.
--
-- ReplacingMergeTree(ingest_time): a webhook redelivered through another Kafka batch gets another
-- dedup token but the same event_id, so merges fold it away (every reader also uses argMax or
-- LIMIT 1 BY event_id, so an unmerged duplicate never changes an answer).
-- non_replicated_deduplication_window = 1000: a retried sink batch with the same
-- insert_deduplication_token adds no rows. ClickHouse defaults this to 0 (off) on non-replicated
-- tables and on chDB; 1000 blocks is about 15 minutes of one-second batches, far longer than a retry.
-- deduplicate_merge_projection_mode = 'rebuild': a ReplacingMergeTree may only carry a projection
-- when merges rebuild it (otherwise the projection would keep rows the merge removed).
--
-- Hot body fields are flattened into typed columns (LowCardinality for enumerations); the whole body
-- stays in `body` as JSON so exports and the linked view can show every field.
-- Empty string means "not given" for flattened strings; build_run_id 0 means no workflow run.
-- status_rank orders states that share an event time: the terminal state wins (rows.py defines it).
-- version is the whole state order in one sortable number, so current-state tables can be
-- ReplacingMergeTree(version) and as-of reads can sort by it: event time in microseconds (high 64 bits),
-- then status_rank (8 bits), then 56 bits of sipHash64(event_id) as the stable tie-breaker.
-- (Measured on chDB 26.9: argMax states over tuples cost ~2.5 us per row to merge; a UInt128 version
-- with ReplacingMergeTree ... FINAL reads a million current rows in ~20 ms.)
CREATE TABLE IF NOT EXISTS events
(
    event_id String,
    key String,
    kind LowCardinality(String),
    source LowCardinality(String),
    digest String,
    event_time DateTime64(6, 'UTC'),
    ingest_time DateTime64(6, 'UTC'),
    delivery_id String,
    status_rank UInt8,
    version UInt128 MATERIALIZED bitOr(
        bitShiftLeft(toUInt128(toUnixTimestamp64Micro(event_time)), 64),
        bitOr(bitShiftLeft(toUInt128(status_rank), 56), toUInt128(bitShiftRight(sipHash64(event_id), 8)))),

    storage_registry LowCardinality(String),
    storage_registry_url LowCardinality(String),
    storage_registry_host LowCardinality(String),
    storage_repository String,
    storage_path String,
    storage_status LowCardinality(String),
    storage_action LowCardinality(String),
    storage_tags Array(String),
    storage_vacated_repository String,
    storage_vacated_path String,

    build_repository String,
    build_run_id UInt64,
    build_commit String,
    build_status LowCardinality(String),
    build_conclusion LowCardinality(String),
    build_builder_id LowCardinality(String),
    build_attestation_sha256 String,

    deployment_logical_environment LowCardinality(String),
    deployment_physical_environment LowCardinality(String),
    deployment_cluster LowCardinality(String),
    deployment_name String,
    deployment_status LowCardinality(String),
    deployment_runtime_risks Array(LowCardinality(String)),
    deployment_risks_asserted_by LowCardinality(String),

    link_index_digest String,
    link_platform_digest String,
    link_platform LowCardinality(String),

    alert_key String,
    alert_scope LowCardinality(String),
    alert_repository String,
    alert_vulnerability_id String,
    alert_severity LowCardinality(String),
    alert_cvss Nullable(Float64),
    alert_epss Nullable(Float64),
    alert_state LowCardinality(String),
    alert_tool LowCardinality(String),
    alert_package String,
    alert_title String,

    body String CODEC(ZSTD(3)),

    PROJECTION events_by_time
    (
        SELECT *
        ORDER BY event_time, key, event_id
    )
)
ENGINE = ReplacingMergeTree(ingest_time)
ORDER BY (key, event_time, event_id)
SETTINGS non_replicated_deduplication_window = 1000, deduplicate_merge_projection_mode = 'rebuild';
