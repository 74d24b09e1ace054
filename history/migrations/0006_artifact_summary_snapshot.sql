-- 0006: the artifacts summary (one row per artifact family: names, where stored, deployed, open alerts by
-- severity), kept as a snapshot with a change stamp over every event, for the web pages.
--
-- Why: the summary reads seven views and folds ~25 aggregates over them; on chDB 26.9 ClickHouse spends
-- most of a list request *planning* that query (~125 of ~160 ms on the demo organisation), so the pages'
-- p95 rode on machine noise around their 300 ms budget. history.artifact_summary.refresh_summary_snapshot()
-- computes it after a write batch instead, and a reader uses a snapshot only while its stamp equals the
-- current one; otherwise it computes the summary as before. A stale snapshot costs time, never an answer.
--
-- event_change_state: the change stamp, as deployment_change_state (0004) but over every event kind, since
-- every kind changes some column of the summary. No backfill: the stamp only has to change when events
-- arrive.
CREATE TABLE IF NOT EXISTS event_change_state
(
    id UInt8,
    rows SimpleAggregateFunction(sum, UInt64),
    hash SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS event_change_state_mv TO event_change_state AS
SELECT toUInt8(0) AS id, count() AS rows, sum(sipHash64(event_id)) AS hash
FROM events;

-- artifact_summary_snapshot: one partition per refresh (generation). Its rows are the summary, one per
-- family; a last row with family '' marks the generation complete, so a reader never sees a half-written
-- one. Old generations are dropped a partition at a time (cheap, no mutation), and a generation stays
-- for a while after a newer one lands, so a reader that picked it a moment ago still finds it.
CREATE TABLE IF NOT EXISTS artifact_summary_snapshot
(
    generation UInt64,
    change_rows UInt64,
    change_hash UInt64,
    family String,
    name String,
    digests Array(String),
    registries Array(String),
    registry_hosts Array(String),
    tags Array(String),
    repositories Array(String),
    environments Array(String),
    locations Array(Tuple(String, String)),
    runtime_risks Array(String),
    production_risks Array(String),
    deployed UInt8,
    open_critical UInt64,
    open_high UInt64,
    open_medium UInt64,
    open_low UInt64,
    open_negligible UInt64,
    open_unknown UInt64,
    fixed_alerts UInt64,
    dismissed_alerts UInt64,
    max_open_cvss Nullable(Float64),
    max_open_epss Nullable(Float64),
    last_activity DateTime64(6, 'UTC'),
    open_alerts UInt64
)
ENGINE = MergeTree
PARTITION BY generation
ORDER BY family;
