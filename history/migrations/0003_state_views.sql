-- 0003: current-state views and point-in-time (as-of) views.
--
-- X_current reads the small *_state tables of 0002 with FINAL: what is true now. This is the hot
-- path (the linked view, the alert search), so these are plain views over tables: ClickHouse plans a
-- plain view in a few milliseconds, a parameterised view with unions in tens (measured on chDB 26.9).
--
-- X_at(as_of) answers the same question at a point in time from the history: for each entity the
-- event with the highest version among those with event_time <= as_of (ORDER BY ... version DESC
-- LIMIT 1 BY, the fastest form measured), then the same joins as X_current. A test checks that
-- X_at(far future) equals X_current on generated histories.
--
--   SELECT * FROM deployments_current WHERE logical_environment = 'prod'
--   SELECT * FROM deployments_at(as_of = '2025-03-01 00:00:00') WHERE logical_environment = 'prod'
--
-- ClickHouse aliases are visible across a whole SELECT, so no alias below reuses the name of a
-- column it is computed from.

-- Storage locations ----------------------------------------------------------------------------------
CREATE VIEW IF NOT EXISTS storage_current AS
SELECT digest, registry_url, repository, path, status, action, registry, registry_host, tags, body,
    updated_at, event_id
FROM storage_state FINAL;

CREATE VIEW IF NOT EXISTS storage_at AS
SELECT digest, loc.1 AS registry_url, loc.2 AS repository, loc.3 AS path, loc.4 AS status,
    storage_action AS action, storage_registry AS registry, storage_registry_host AS registry_host,
    loc.5 AS tags, body, event_time AS updated_at, event_id
FROM events
ARRAY JOIN arrayConcat(
    [CAST((storage_registry_url, storage_repository, storage_path, storage_status, storage_tags),
          'Tuple(String, String, String, String, Array(String))')],
    if(storage_vacated_repository = '', [],
       [CAST((storage_registry_url, storage_vacated_repository, storage_vacated_path, 'deleted', []),
             'Tuple(String, String, String, String, Array(String))')])) AS loc
WHERE kind = 'storage' AND digest != '' AND event_time <= {as_of:DateTime64(6, 'UTC')}
ORDER BY digest, registry_url, repository, path, version DESC
LIMIT 1 BY digest, registry_url, repository, path;

-- Deployments ----------------------------------------------------------------------------------------
-- The latest state of every (digest, slot), before slot takeover; digest '' = slot-wide events.
CREATE VIEW IF NOT EXISTS deployment_states_current AS
SELECT digest, logical_environment, physical_environment, cluster, deployment_name, status, body,
    updated_at, event_id
FROM deployment_state FINAL;

CREATE VIEW IF NOT EXISTS deployment_states_at AS
SELECT digest, deployment_logical_environment AS logical_environment,
    deployment_physical_environment AS physical_environment, deployment_cluster AS cluster,
    deployment_name, deployment_status AS status, body, event_time AS updated_at, event_id
FROM events
WHERE kind = 'deployment' AND event_time <= {as_of:DateTime64(6, 'UTC')}
ORDER BY digest, logical_environment, physical_environment, cluster, deployment_name, version DESC
LIMIT 1 BY digest, logical_environment, physical_environment, cluster, deployment_name;

CREATE VIEW IF NOT EXISTS deployment_holders_at AS
SELECT deployment_logical_environment AS logical_environment,
    deployment_physical_environment AS physical_environment, deployment_cluster AS cluster,
    deployment_name, digest, event_time AS deployed_at
FROM events
WHERE kind = 'deployment' AND event_time <= {as_of:DateTime64(6, 'UTC')}
    AND ((digest != '' AND deployment_status = 'deployed') OR (digest = '' AND deployment_status = 'decommissioned'))
ORDER BY logical_environment, physical_environment, cluster, deployment_name, version DESC
LIMIT 1 BY logical_environment, physical_environment, cluster, deployment_name;

CREATE VIEW IF NOT EXISTS deployment_risks_at AS
SELECT digest, deployment_logical_environment AS logical_environment,
    deployment_physical_environment AS physical_environment, deployment_cluster AS cluster,
    deployment_name, deployment_runtime_risks AS runtime_risks,
    deployment_risks_asserted_by AS risks_asserted_by, event_time AS risks_asserted_at
FROM events
WHERE kind = 'deployment' AND digest != '' AND event_time <= {as_of:DateTime64(6, 'UTC')}
    AND (notEmpty(deployment_runtime_risks) OR deployment_risks_asserted_by != '')
ORDER BY digest, logical_environment, physical_environment, cluster, deployment_name, version DESC
LIMIT 1 BY digest, logical_environment, physical_environment, cluster, deployment_name;

-- What is deployed. Slot takeover: a slot's holder is the digest of its latest `deployed` event, and
-- only the holder is deployed there: earlier holders are not, even if no decommission was reported
-- for them. The holder must still be deployed itself (no later decommission of that digest in the
-- slot), and a later slot-wide decommission leaves the slot empty (holder '').
CREATE VIEW IF NOT EXISTS deployments_current AS
SELECT
    d.digest AS digest,
    d.logical_environment AS logical_environment,
    d.physical_environment AS physical_environment,
    d.cluster AS cluster,
    d.deployment_name AS deployment_name,
    r.runtime_risks AS runtime_risks,
    r.risks_asserted_by AS risks_asserted_by,
    r.risks_asserted_at AS risks_asserted_at,
    h.deployed_at AS deployed_at,
    d.updated_at AS updated_at,
    d.body AS body,
    d.event_id AS event_id
FROM deployment_state AS d FINAL
INNER JOIN deployment_holder_state AS h FINAL
    ON h.logical_environment = d.logical_environment AND h.physical_environment = d.physical_environment
    AND h.cluster = d.cluster AND h.deployment_name = d.deployment_name AND h.digest = d.digest
LEFT JOIN deployment_risk_state AS r FINAL
    ON r.digest = d.digest AND r.logical_environment = d.logical_environment
    AND r.physical_environment = d.physical_environment AND r.cluster = d.cluster
    AND r.deployment_name = d.deployment_name
WHERE d.digest != '' AND d.status = 'deployed'
SETTINGS join_use_nulls = 0;

CREATE VIEW IF NOT EXISTS deployments_at AS
SELECT
    d.digest AS digest,
    d.logical_environment AS logical_environment,
    d.physical_environment AS physical_environment,
    d.cluster AS cluster,
    d.deployment_name AS deployment_name,
    r.runtime_risks AS runtime_risks,
    r.risks_asserted_by AS risks_asserted_by,
    r.risks_asserted_at AS risks_asserted_at,
    h.deployed_at AS deployed_at,
    d.updated_at AS updated_at,
    d.body AS body,
    d.event_id AS event_id
FROM deployment_states_at(as_of = {as_of:DateTime64(6, 'UTC')}) AS d
INNER JOIN deployment_holders_at(as_of = {as_of:DateTime64(6, 'UTC')}) AS h
    ON h.logical_environment = d.logical_environment AND h.physical_environment = d.physical_environment
    AND h.cluster = d.cluster AND h.deployment_name = d.deployment_name AND h.digest = d.digest
LEFT JOIN deployment_risks_at(as_of = {as_of:DateTime64(6, 'UTC')}) AS r
    ON r.digest = d.digest AND r.logical_environment = d.logical_environment
    AND r.physical_environment = d.physical_environment AND r.cluster = d.cluster
    AND r.deployment_name = d.deployment_name
WHERE d.digest != '' AND d.status = 'deployed'
SETTINGS join_use_nulls = 0;

-- Alerts -----------------------------------------------------------------------------------------------
CREATE VIEW IF NOT EXISTS alerts_current AS
SELECT subject, alert_key, scope, repository, vulnerability_id, severity, cvss, epss, state, tool, package,
    title, updated_at, event_id
FROM alert_state FINAL;

CREATE VIEW IF NOT EXISTS alerts_at AS
SELECT key AS subject, alert_key, alert_scope AS scope, alert_repository AS repository,
    alert_vulnerability_id AS vulnerability_id, alert_severity AS severity, alert_cvss AS cvss,
    alert_epss AS epss, alert_state AS state, alert_tool AS tool, alert_package AS package,
    alert_title AS title, event_time AS updated_at, event_id
FROM events
WHERE kind = 'alert' AND event_time <= {as_of:DateTime64(6, 'UTC')}
ORDER BY subject, alert_key, version DESC
LIMIT 1 BY subject, alert_key;

-- Builds -----------------------------------------------------------------------------------------------
CREATE VIEW IF NOT EXISTS build_subjects_current AS
SELECT digest, repository, run_id, attestation_sha256, builder_id, commit, body, updated_at, event_id
FROM build_subject_state FINAL;

CREATE VIEW IF NOT EXISTS build_subjects_at AS
SELECT digest, build_repository AS repository, build_run_id AS run_id,
    build_attestation_sha256 AS attestation_sha256, build_builder_id AS builder_id,
    build_commit AS commit, body, event_time AS updated_at, event_id
FROM events
WHERE kind = 'build' AND digest != '' AND event_time <= {as_of:DateTime64(6, 'UTC')}
ORDER BY digest, repository, run_id, attestation_sha256, version DESC
LIMIT 1 BY digest, repository, run_id, attestation_sha256;

CREATE VIEW IF NOT EXISTS build_runs_current AS
SELECT repository, run_id, status, conclusion, commit, body, updated_at, event_id
FROM build_run_state FINAL;

CREATE VIEW IF NOT EXISTS build_runs_at AS
SELECT build_repository AS repository, build_run_id AS run_id, build_status AS status,
    build_conclusion AS conclusion, build_commit AS commit, body, event_time AS updated_at, event_id
FROM events
WHERE kind = 'build' AND digest = '' AND build_run_id != 0 AND event_time <= {as_of:DateTime64(6, 'UTC')}
ORDER BY repository, run_id, version DESC
LIMIT 1 BY repository, run_id;

-- A digest's builds with the workflow run merged in: provenance names the run id, the workflow_run
-- webhook (keyed run:owner/repo/<id>) tells how the run ended.
CREATE VIEW IF NOT EXISTS builds_current AS
SELECT
    b.digest AS digest, b.repository AS repository, b.run_id AS run_id,
    b.attestation_sha256 AS attestation_sha256, b.builder_id AS builder_id,
    if(b.commit != '', b.commit, r.commit) AS commit, r.status AS run_status, r.conclusion AS run_conclusion,
    b.body AS body, r.body AS run_body, b.updated_at AS updated_at, b.event_id AS event_id
FROM build_subject_state AS b FINAL
LEFT JOIN build_run_state AS r FINAL ON r.repository = b.repository AND r.run_id = b.run_id
SETTINGS join_use_nulls = 0;

CREATE VIEW IF NOT EXISTS builds_at AS
SELECT
    b.digest AS digest, b.repository AS repository, b.run_id AS run_id,
    b.attestation_sha256 AS attestation_sha256, b.builder_id AS builder_id,
    if(b.commit != '', b.commit, r.commit) AS commit, r.status AS run_status, r.conclusion AS run_conclusion,
    b.body AS body, r.body AS run_body, b.updated_at AS updated_at, b.event_id AS event_id
FROM build_subjects_at(as_of = {as_of:DateTime64(6, 'UTC')}) AS b
LEFT JOIN build_runs_at(as_of = {as_of:DateTime64(6, 'UTC')}) AS r
    ON r.repository = b.repository AND r.run_id = b.run_id
SETTINGS join_use_nulls = 0;

-- Links and families -------------------------------------------------------------------------------------
CREATE VIEW IF NOT EXISTS links_current AS
SELECT digest, relation, linked_digest, platform, linked_at
FROM link_state FINAL;

CREATE VIEW IF NOT EXISTS links_at AS
SELECT pair.1 AS digest, pair.3 AS relation, pair.2 AS linked_digest, link_platform AS platform,
    event_time AS linked_at
FROM events
ARRAY JOIN [(link_index_digest, link_platform_digest, 'platform'),
            (link_platform_digest, link_index_digest, 'index')] AS pair
WHERE kind = 'link' AND link_index_digest != '' AND link_platform_digest != ''
    AND event_time <= {as_of:DateTime64(6, 'UTC')}
ORDER BY digest, relation, linked_digest, version DESC
LIMIT 1 BY digest, relation, linked_digest;

-- The family root of every linked digest: the smallest image index it belongs to (an index is its own
-- root). Digests absent here are their own root.
CREATE VIEW IF NOT EXISTS digest_roots_current AS
SELECT digest, family_root AS root
FROM (SELECT digest, CAST(root, 'String') AS family_root FROM digest_root_state FINAL);

CREATE VIEW IF NOT EXISTS digest_roots_at AS
SELECT pair.1 AS digest, min(pair.2) AS root
FROM events
ARRAY JOIN [(link_platform_digest, link_index_digest), (link_index_digest, link_index_digest)] AS pair
WHERE kind = 'link' AND link_index_digest != '' AND link_platform_digest != ''
    AND event_time <= {as_of:DateTime64(6, 'UTC')}
GROUP BY digest;
