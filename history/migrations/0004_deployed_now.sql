-- 0004: a snapshot of what is deployed now, for the alert search, with a change stamp that says when it is
-- still true.
--
-- Why: a filter that can only match deployed artifacts (has:deployment runtime-risk:internet-exposed, the
-- top triage question) starts from the deployments now, and deployments_current joins three replacing tables
-- with FINAL: ~375 ms at 10M history rows (600k digest-slot states) on chDB 26.9, for a few thousand rows.
-- The slot-takeover rule needs every slot's holder and the holder's own latest state, so no materialized
-- view can keep the answer row by row; history.deployed.refresh_deployed_now() recomputes it after a write
-- batch instead, and a reader uses it only while its stamp equals the current change stamp.
--
-- deployment_change_state: the change stamp. Every inserted deployment or link event (the only events
-- that change deployments_current or a family root) adds 1 to `rows` and its sipHash64(event_id) to `hash`
-- (sums wrap mod 2^64: it is an identity, not a count). Nothing ever subtracts, so a stamp seen again means
-- no such event arrived since. A retried batch is deduplicated here as in every table
-- (non_replicated_deduplication_window); a redelivery in a new batch changes the stamp, which only costs a
-- refresh. No backfill: the stamp only has to change when events arrive, not to count the past.
CREATE TABLE IF NOT EXISTS deployment_change_state
(
    id UInt8,
    rows SimpleAggregateFunction(sum, UInt64),
    hash SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS deployment_change_state_mv TO deployment_change_state AS
SELECT toUInt8(0) AS id, count() AS rows, sum(sipHash64(event_id)) AS hash
FROM events
WHERE kind IN ('deployment', 'link');

-- deployed_now_snapshot: one row per refresh, the (digest, lower-cased logical environment, runtime risks,
-- family root) of every row of deployments_current at the stamp it was computed under. ReplacingMergeTree
-- keyed by a constant: merges keep the latest refresh only, so the table stays one row of a few thousand
-- array elements.
CREATE TABLE IF NOT EXISTS deployed_now_snapshot
(
    id UInt8,
    change_rows UInt64,
    change_hash UInt64,
    refreshed_at DateTime64(6, 'UTC') DEFAULT now64(6, 'UTC'),
    digests Array(String),
    environments Array(String),
    runtime_risks Array(Array(String)),
    roots Array(String)
)
ENGINE = ReplacingMergeTree(refreshed_at)
ORDER BY id;
