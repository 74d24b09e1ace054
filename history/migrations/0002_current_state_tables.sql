-- 0002: small current-state tables, kept up to date by materialized views over `events`.
--
-- Why: the linked view and the hot alert queries must answer in well under 200 ms at 10 million
-- history rows. Re-aggregating the history per request cannot do that; these tables hold one row per
-- storage location, deployment slot, alert, build and link, so a request reads thousands of rows.
--
-- Each is ReplacingMergeTree(version) keyed by the entity, read with FINAL: the row with the highest
-- events.version survives, i.e. the latest event_time, then the terminal status, then a stable hash of
-- event_id. The order does not depend on arrival, and a redelivered event (same event_id, same version)
-- changes nothing. The tables set non_replicated_deduplication_window so a retried batch (same
-- insert_deduplication_token) does not even add parts: the token is passed on to dependent views
-- (deduplicate_blocks_in_dependent_materialized_views, on by default in current ClickHouse).
--
-- The as-of path does not use these tables: the *_at views (0003) pick the same rows from `events`
-- restricted to event_time <= as_of. A test checks that both paths agree.
-- A later migration that adds a table here must backfill it from `events` (INSERT ... SELECT):
-- a materialized view only sees rows inserted after it exists.

-- Storage locations: one row per (digest, registry_url, repository, path). A move also writes the
-- location it left, as deleted (events.storage_vacated_*).
CREATE TABLE IF NOT EXISTS storage_state
(
    digest String,
    registry_url LowCardinality(String),
    repository String,
    path String,
    status LowCardinality(String),
    action LowCardinality(String),
    registry LowCardinality(String),
    registry_host LowCardinality(String),
    tags Array(String),
    body String,
    updated_at DateTime64(6, 'UTC'),
    event_id String,
    version UInt128
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (digest, registry_url, repository, path)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS storage_state_mv TO storage_state AS
SELECT
    digest,
    loc.1 AS registry_url,
    loc.2 AS repository,
    loc.3 AS path,
    loc.4 AS status,
    storage_action AS action,
    storage_registry AS registry,
    storage_registry_host AS registry_host,
    loc.5 AS tags,
    body,
    event_time AS updated_at,
    event_id,
    version
FROM events
ARRAY JOIN arrayConcat(
    [CAST((storage_registry_url, storage_repository, storage_path, storage_status, storage_tags),
          'Tuple(String, String, String, String, Array(String))')],
    if(storage_vacated_repository = '', [],
       [CAST((storage_registry_url, storage_vacated_repository, storage_vacated_path, 'deleted', []),
             'Tuple(String, String, String, String, Array(String))')])) AS loc
WHERE kind = 'storage' AND digest != '';

-- Deployments: the latest state of each (digest, slot). digest = '' holds slot-wide events (a
-- workload deleted, reported without a digest). Slot takeover is resolved in deployments_at.
CREATE TABLE IF NOT EXISTS deployment_state
(
    digest String,
    logical_environment LowCardinality(String),
    physical_environment LowCardinality(String),
    cluster LowCardinality(String),
    deployment_name String,
    status LowCardinality(String),
    body String,
    updated_at DateTime64(6, 'UTC'),
    event_id String,
    version UInt128
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (digest, logical_environment, physical_environment, cluster, deployment_name)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS deployment_state_mv TO deployment_state AS
SELECT
    digest,
    deployment_logical_environment AS logical_environment,
    deployment_physical_environment AS physical_environment,
    deployment_cluster AS cluster,
    deployment_name,
    deployment_status AS status,
    body,
    event_time AS updated_at,
    event_id,
    version
FROM events
WHERE kind = 'deployment';

-- The latest risk assertion per (digest, slot). Only events that assert risks (a non-empty list or a
-- named asserter) count, so a Kubernetes re-observation without risk data keeps what a runtime
-- monitor asserted.
CREATE TABLE IF NOT EXISTS deployment_risk_state
(
    digest String,
    logical_environment LowCardinality(String),
    physical_environment LowCardinality(String),
    cluster LowCardinality(String),
    deployment_name String,
    runtime_risks Array(LowCardinality(String)),
    risks_asserted_by LowCardinality(String),
    risks_asserted_at DateTime64(6, 'UTC'),
    version UInt128
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (digest, logical_environment, physical_environment, cluster, deployment_name)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS deployment_risk_state_mv TO deployment_risk_state AS
SELECT
    digest,
    deployment_logical_environment AS logical_environment,
    deployment_physical_environment AS physical_environment,
    deployment_cluster AS cluster,
    deployment_name,
    deployment_runtime_risks AS runtime_risks,
    deployment_risks_asserted_by AS risks_asserted_by,
    event_time AS risks_asserted_at,
    version
FROM events
WHERE kind = 'deployment' AND digest != ''
    AND (notEmpty(deployment_runtime_risks) OR deployment_risks_asserted_by != '');

-- Slot takeover: the digest of the latest `deployed` event of each slot is its holder. A later
-- slot-wide decommission (a workload deleted, reported without a digest) makes the holder '' (nobody).
CREATE TABLE IF NOT EXISTS deployment_holder_state
(
    logical_environment LowCardinality(String),
    physical_environment LowCardinality(String),
    cluster LowCardinality(String),
    deployment_name String,
    digest String,
    deployed_at DateTime64(6, 'UTC'),
    version UInt128
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (logical_environment, physical_environment, cluster, deployment_name)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS deployment_holder_state_mv TO deployment_holder_state AS
SELECT
    deployment_logical_environment AS logical_environment,
    deployment_physical_environment AS physical_environment,
    deployment_cluster AS cluster,
    deployment_name,
    digest,
    event_time AS deployed_at,
    version
FROM events
WHERE kind = 'deployment'
    AND ((digest != '' AND deployment_status = 'deployed') OR (digest = '' AND deployment_status = 'decommissioned'));

-- Alerts: one row per (subject, alert_key); subject is the event key (a digest or repo:owner/name).
-- No body here: the ranking reads every row, and the page's bodies come from `events` by key.
CREATE TABLE IF NOT EXISTS alert_state
(
    subject String,
    alert_key String,
    scope LowCardinality(String),
    repository String,
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
    version UInt128
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (subject, alert_key)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS alert_state_mv TO alert_state AS
SELECT
    key AS subject,
    alert_key,
    alert_scope AS scope,
    alert_repository AS repository,
    alert_vulnerability_id AS vulnerability_id,
    alert_severity AS severity,
    alert_cvss AS cvss,
    alert_epss AS epss,
    alert_state AS state,
    alert_tool AS tool,
    alert_package AS package,
    alert_title AS title,
    event_time AS updated_at,
    event_id,
    version
FROM events
WHERE kind = 'alert';

-- Builds of a digest (provenance and other digest-keyed build facts): one row per
-- (digest, source repository, workflow run, attestation).
CREATE TABLE IF NOT EXISTS build_subject_state
(
    digest String,
    repository String,
    run_id UInt64,
    attestation_sha256 String,
    builder_id LowCardinality(String),
    commit String,
    body String,
    updated_at DateTime64(6, 'UTC'),
    event_id String,
    version UInt128
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (digest, repository, run_id, attestation_sha256)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS build_subject_state_mv TO build_subject_state AS
SELECT
    digest,
    build_repository AS repository,
    build_run_id AS run_id,
    build_attestation_sha256 AS attestation_sha256,
    build_builder_id AS builder_id,
    build_commit AS commit,
    body,
    event_time AS updated_at,
    event_id,
    version
FROM events
WHERE kind = 'build' AND digest != '';

-- Workflow runs (workflow_run webhooks, keyed run:owner/repo/<id>, no digest): one row per run.
-- builds_at joins them to the digest builds that name the same (repository, run id).
CREATE TABLE IF NOT EXISTS build_run_state
(
    repository String,
    run_id UInt64,
    status LowCardinality(String),
    conclusion LowCardinality(String),
    commit String,
    body String,
    updated_at DateTime64(6, 'UTC'),
    event_id String,
    version UInt128
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (repository, run_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS build_run_state_mv TO build_run_state AS
SELECT
    build_repository AS repository,
    build_run_id AS run_id,
    build_status AS status,
    build_conclusion AS conclusion,
    build_commit AS commit,
    body,
    event_time AS updated_at,
    event_id,
    version
FROM events
WHERE kind = 'build' AND digest = '' AND build_run_id != 0;

-- Index <-> platform links, in both directions so either digest finds the other by the sort key.
-- relation = 'platform': linked_digest is a platform manifest of digest;
-- relation = 'index': linked_digest is an image index that contains digest.
CREATE TABLE IF NOT EXISTS link_state
(
    digest String,
    relation LowCardinality(String),
    linked_digest String,
    platform LowCardinality(String),
    linked_at DateTime64(6, 'UTC'),
    version UInt128
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (digest, relation, linked_digest)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS link_state_mv TO link_state AS
SELECT
    pair.1 AS digest,
    pair.3 AS relation,
    pair.2 AS linked_digest,
    link_platform AS platform,
    event_time AS linked_at,
    version
FROM events
ARRAY JOIN [(link_index_digest, link_platform_digest, 'platform'),
            (link_platform_digest, link_index_digest, 'index')] AS pair
WHERE kind = 'link' AND link_index_digest != '' AND link_platform_digest != '';

-- The family root of every linked digest: the smallest image index it belongs to (an index is in
-- its own family). min() is order-free, so this is a plain aggregate, not a replacing table.
-- Digests absent here are their own root.
CREATE TABLE IF NOT EXISTS digest_root_state
(
    digest String,
    root SimpleAggregateFunction(min, String)
)
ENGINE = AggregatingMergeTree
ORDER BY digest
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS digest_root_state_mv TO digest_root_state AS
SELECT pair.1 AS digest, min(pair.2) AS root
FROM events
ARRAY JOIN [(link_platform_digest, link_index_digest), (link_index_digest, link_index_digest)] AS pair
WHERE kind = 'link' AND link_index_digest != '' AND link_platform_digest != ''
GROUP BY digest;
