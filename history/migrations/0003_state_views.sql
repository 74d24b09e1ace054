-- 0003: current-state and point-in-time views, one definition for both.
--
-- Each X_at(as_of) is a parameterised view. With as_of = NULL it merges the small *_state tables kept
-- by the materialized views of 0002 (fast: the hot path). With a time it recomputes the same
-- aggregates from `events` restricted to event_time <= as_of (the as-of path reads history).
-- The branch that does not apply has a constant-false WHERE, so ClickHouse never reads its table.
-- X_current is X_at(as_of = NULL), for analysts and for everything that asks about "now".
--
-- Order of state changes: argMax by (event_time, status_rank, event_id); see 0002.
--
-- Callers:      SELECT ... FROM deployments_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))})
-- Analysts:     SELECT ... FROM deployments_at(as_of = '2025-03-01 00:00:00')   -- or deployments_current
--
-- Note: ClickHouse aliases are visible across a whole SELECT, so no alias below reuses the name of a
-- column it is computed from.

CREATE VIEW IF NOT EXISTS storage_at AS
SELECT
    digest, registry_url, repository, path,
    s.1 AS status, s.2 AS action, s.3 AS registry, s.4 AS registry_host, s.5 AS tags, s.6 AS body,
    s.7 AS updated_at, s.8 AS event_id, created_at
FROM
(
    SELECT digest, registry_url, repository, path,
        argMaxMerge(latest_state) AS s, min(first_seen_min) AS created_at
    FROM storage_state
    WHERE isNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY digest, registry_url, repository, path
    UNION ALL
    SELECT digest, loc.1 AS registry_url, loc.2 AS repository, loc.3 AS path,
        argMax(
            CAST((loc.4, storage_action, storage_registry, storage_registry_host, loc.5, body, event_time, event_id),
                 'Tuple(String, String, String, String, Array(String), String, DateTime64(6, \'UTC\'), String)'),
            (event_time, status_rank, event_id)) AS s,
        min(event_time) AS created_at
    FROM events
    ARRAY JOIN arrayConcat(
        [CAST((storage_registry_url, storage_repository, storage_path, storage_status, storage_tags),
              'Tuple(String, String, String, String, Array(String))')],
        if(storage_vacated_repository = '', [],
           [CAST((storage_registry_url, storage_vacated_repository, storage_vacated_path, 'deleted', []),
                 'Tuple(String, String, String, String, Array(String))')])) AS loc
    WHERE kind = 'storage' AND digest != ''
        AND isNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
        AND event_time <= assumeNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY digest, registry_url, repository, path
);

-- Every (digest, slot) with its latest state, before slot takeover.
CREATE VIEW IF NOT EXISTS deployment_slots_at AS
SELECT
    digest, logical_environment, physical_environment, cluster, deployment_name,
    s.1 AS status, s.2 AS body, s.3 AS updated_at, s.4 AS event_id,
    r.1 AS runtime_risks, r.2 AS risks_asserted_by, r.3 AS risks_asserted_at,
    last_deployed_at, first_seen
FROM
(
    SELECT digest, logical_environment, physical_environment, cluster, deployment_name,
        argMaxMerge(latest_state) AS s, argMaxMerge(risks_state) AS r,
        max(last_deployed_max) AS last_deployed_at, min(first_seen_min) AS first_seen
    FROM deployment_state
    WHERE isNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY digest, logical_environment, physical_environment, cluster, deployment_name
    UNION ALL
    SELECT digest,
        deployment_logical_environment AS logical_environment,
        deployment_physical_environment AS physical_environment,
        deployment_cluster AS cluster,
        deployment_name,
        argMax(
            CAST((deployment_status, body, event_time, event_id),
                 'Tuple(String, String, DateTime64(6, \'UTC\'), String)'),
            (event_time, status_rank, event_id)) AS s,
        argMax(
            CAST(if(notEmpty(deployment_runtime_risks) OR deployment_risks_asserted_by != '',
                    (deployment_runtime_risks, deployment_risks_asserted_by, event_time),
                    ([], '', toDateTime64(0, 6, 'UTC'))),
                 'Tuple(Array(String), String, DateTime64(6, \'UTC\'))'),
            (if(notEmpty(deployment_runtime_risks) OR deployment_risks_asserted_by != '',
                event_time, toDateTime64(0, 6, 'UTC')), event_id)) AS r,
        max(if(deployment_status = 'deployed', event_time, toDateTime64(0, 6, 'UTC'))) AS last_deployed_at,
        min(event_time) AS first_seen
    FROM events
    WHERE kind = 'deployment'
        AND isNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
        AND event_time <= assumeNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY digest, logical_environment, physical_environment, cluster, deployment_name
);

-- What is deployed now (or at as_of), with slot takeover: a slot's holder is the digest with the
-- latest `deployed` event for that slot; earlier holders are no longer deployed there even if no
-- decommission was ever reported for them. A slot-wide decommission (digest '') clears the slot
-- for every digest whose latest event is older.
CREATE VIEW IF NOT EXISTS deployments_at AS
SELECT
    d.digest AS digest,
    d.logical_environment AS logical_environment,
    d.physical_environment AS physical_environment,
    d.cluster AS cluster,
    d.deployment_name AS deployment_name,
    d.runtime_risks AS runtime_risks,
    d.risks_asserted_by AS risks_asserted_by,
    d.risks_asserted_at AS risks_asserted_at,
    d.last_deployed_at AS deployed_at,
    d.first_seen AS first_seen,
    d.updated_at AS updated_at,
    d.body AS body,
    d.event_id AS event_id
FROM deployment_slots_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))}) AS d
INNER JOIN
(
    SELECT logical_environment, physical_environment, cluster, deployment_name,
        argMaxIf(digest, (last_deployed_at, digest), digest != '') AS holder,
        maxIf(updated_at, digest = '' AND status = 'decommissioned') AS cleared_at
    FROM deployment_slots_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY logical_environment, physical_environment, cluster, deployment_name
) AS h
    ON h.logical_environment = d.logical_environment
    AND h.physical_environment = d.physical_environment
    AND h.cluster = d.cluster
    AND h.deployment_name = d.deployment_name
WHERE d.digest != '' AND d.status = 'deployed' AND d.digest = h.holder AND d.updated_at > h.cleared_at;

CREATE VIEW IF NOT EXISTS alerts_at AS
SELECT
    subject, alert_key,
    s.1 AS scope, s.2 AS repository, s.3 AS vulnerability_id, s.4 AS severity, s.5 AS cvss, s.6 AS epss,
    s.7 AS state, s.8 AS tool, s.9 AS package, s.10 AS title, s.11 AS updated_at, s.12 AS event_id,
    first_seen
FROM
(
    SELECT subject, alert_key, argMaxMerge(latest_state) AS s, min(first_seen_min) AS first_seen
    FROM alert_state
    WHERE isNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY subject, alert_key
    UNION ALL
    SELECT key AS subject, alert_key,
        argMax(
            CAST((alert_scope, alert_repository, alert_vulnerability_id, alert_severity, alert_cvss, alert_epss,
                  alert_state, alert_tool, alert_package, alert_title, event_time, event_id),
                 'Tuple(String, String, String, String, Nullable(Float64), Nullable(Float64), String, String, String, String, DateTime64(6, \'UTC\'), String)'),
            (event_time, status_rank, event_id)) AS s,
        min(event_time) AS first_seen
    FROM events
    WHERE kind = 'alert'
        AND isNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
        AND event_time <= assumeNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY subject, alert_key
);

CREATE VIEW IF NOT EXISTS build_subjects_at AS
SELECT
    digest, repository, run_id, attestation_sha256,
    s.1 AS builder_id, s.2 AS commit, s.3 AS body, s.4 AS updated_at, s.5 AS event_id, first_seen
FROM
(
    SELECT digest, repository, run_id, attestation_sha256,
        argMaxMerge(latest_state) AS s, min(first_seen_min) AS first_seen
    FROM build_subject_state
    WHERE isNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY digest, repository, run_id, attestation_sha256
    UNION ALL
    SELECT digest, build_repository AS repository, build_run_id AS run_id,
        build_attestation_sha256 AS attestation_sha256,
        argMax(
            CAST((build_builder_id, build_commit, body, event_time, event_id),
                 'Tuple(String, String, String, DateTime64(6, \'UTC\'), String)'),
            (event_time, status_rank, event_id)) AS s,
        min(event_time) AS first_seen
    FROM events
    WHERE kind = 'build' AND digest != ''
        AND isNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
        AND event_time <= assumeNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY digest, repository, run_id, attestation_sha256
);

CREATE VIEW IF NOT EXISTS build_runs_at AS
SELECT
    repository, run_id,
    s.1 AS status, s.2 AS conclusion, s.3 AS commit, s.4 AS body, s.5 AS updated_at, s.6 AS event_id,
    first_seen
FROM
(
    SELECT repository, run_id, argMaxMerge(latest_state) AS s, min(first_seen_min) AS first_seen
    FROM build_run_state
    WHERE isNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY repository, run_id
    UNION ALL
    SELECT build_repository AS repository, build_run_id AS run_id,
        argMax(
            CAST((build_status, build_conclusion, build_commit, body, event_time, event_id),
                 'Tuple(String, String, String, String, DateTime64(6, \'UTC\'), String)'),
            (event_time, status_rank, event_id)) AS s,
        min(event_time) AS first_seen
    FROM events
    WHERE kind = 'build' AND digest = '' AND build_run_id != 0
        AND isNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
        AND event_time <= assumeNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY repository, run_id
);

-- A digest's builds with the workflow run merged in: provenance names the run id, the workflow_run
-- webhook (keyed run:owner/repo/<id>) tells how the run ended.
CREATE VIEW IF NOT EXISTS builds_at AS
SELECT
    b.digest AS digest,
    b.repository AS repository,
    b.run_id AS run_id,
    b.attestation_sha256 AS attestation_sha256,
    b.builder_id AS builder_id,
    if(b.commit != '', b.commit, r.commit) AS commit,
    r.status AS run_status,
    r.conclusion AS run_conclusion,
    b.body AS body,
    r.body AS run_body,
    b.updated_at AS updated_at,
    b.first_seen AS first_seen,
    b.event_id AS event_id
FROM build_subjects_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))}) AS b
LEFT JOIN build_runs_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))}) AS r
    ON r.repository = b.repository AND r.run_id = b.run_id;

CREATE VIEW IF NOT EXISTS links_at AS
SELECT digest, relation, linked_digest, platform, first_seen
FROM
(
    SELECT digest, relation, linked_digest,
        argMaxMerge(platform_state) AS platform, min(first_seen_min) AS first_seen
    FROM link_state
    WHERE isNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY digest, relation, linked_digest
    UNION ALL
    SELECT pair.1 AS digest, pair.3 AS relation, pair.2 AS linked_digest,
        argMax(CAST(link_platform, 'String'), event_time) AS platform, min(event_time) AS first_seen
    FROM events
    ARRAY JOIN [(link_index_digest, link_platform_digest, 'platform'),
                (link_platform_digest, link_index_digest, 'index')] AS pair
    WHERE kind = 'link' AND link_index_digest != '' AND link_platform_digest != ''
        AND isNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
        AND event_time <= assumeNotNull({as_of:Nullable(DateTime64(6, 'UTC'))})
    GROUP BY digest, relation, linked_digest
);

-- The family root of every linked digest: an index is its own root; a platform manifest's root is
-- its index (the smallest one, if several indexes list it). Digests absent here are their own root.
CREATE VIEW IF NOT EXISTS digest_roots_at AS
SELECT
    digest,
    if(countIf(relation = 'index') > 0, minIf(linked_digest, relation = 'index'), digest) AS root
FROM links_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))})
GROUP BY digest;

-- One row per alert with the context the filters and the ranking need. The unit of context is the
-- artifact family (an index and its platform manifests): deployment context of an index applies to
-- its platforms, an alert on a platform applies to its index. A repository alert (scope repository,
-- key repo:owner/name) applies to every family whose builds name that source repository.
-- Ranking points (history/alerts.py documents the formula and turns them into reasons):
--   severity critical 40, high 30, medium 15, low 5; CVSS x2 (max 20); EPSS x20 (max 20);
--   exposure of the most exposed deployment: internet-exposed 25, sensitive-data 10,
--   critical-resource 10, lateral-movement 5, capped at 35, halved outside production;
--   environment: 10 if deployed in production (prod, production, prd, live), 5 if deployed elsewhere.
CREATE VIEW IF NOT EXISTS alert_context_at AS
WITH
    roots AS
    (
        SELECT digest, root FROM digest_roots_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))})
    ),
    build_families AS
    (
        SELECT DISTINCT if(r.root = '', b.digest, r.root) AS family, b.repository AS build_repository
        FROM builds_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))}) AS b
        LEFT JOIN roots AS r ON r.digest = b.digest
        WHERE b.repository != ''
    ),
    deployed AS
    (
        SELECT
            if(r.root = '', d.digest, r.root) AS family,
            lowerUTF8(d.logical_environment) AS environment,
            d.runtime_risks AS risks,
            environment IN ('prod', 'production', 'prd', 'live') AS production,
            least(35, 25 * has(risks, 'internet-exposed') + 10 * has(risks, 'sensitive-data')
                + 10 * has(risks, 'critical-resource') + 5 * has(risks, 'lateral-movement')) AS full_points,
            if(production, full_points, intDiv(full_points, 2)) AS points
        FROM deployments_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))}) AS d
        LEFT JOIN roots AS r ON r.digest = d.digest
    ),
    family_deployments AS
    (
        SELECT
            family,
            groupUniqArray(environment) AS family_environments,
            groupUniqArrayArray(risks) AS family_risks,
            max(points) AS family_exposure_points,
            argMax((environment, arraySort(risks)), (points, production, environment, arraySort(risks)))
                AS family_exposure_top,
            max(if(production, 10, 5)) AS family_environment_points
        FROM deployed
        GROUP BY family
    ),
    family_storage AS
    (
        SELECT
            if(r.root = '', s.digest, r.root) AS family,
            groupUniqArray(lowerUTF8(s.registry)) AS family_registries,
            groupUniqArray(s.registry_host) AS family_registry_hosts
        FROM storage_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))}) AS s
        LEFT JOIN roots AS r ON r.digest = s.digest
        WHERE s.status = 'active'
        GROUP BY family
    ),
    family_builds AS
    (
        SELECT family, groupUniqArray(build_repository) AS family_repositories
        FROM build_families
        GROUP BY family
    ),
    selected_alerts AS
    (
        SELECT * FROM alerts_at(as_of = {as_of:Nullable(DateTime64(6, 'UTC'))})
    ),
    alert_families AS
    (
        SELECT a.subject AS af_subject, a.alert_key AS af_alert_key, if(r.root = '', a.subject, r.root) AS af_family
        FROM selected_alerts AS a
        LEFT JOIN roots AS r ON r.digest = a.subject
        WHERE a.scope != 'repository'
        UNION ALL
        SELECT a.subject AS af_subject, a.alert_key AS af_alert_key, b.family AS af_family
        FROM selected_alerts AS a
        INNER JOIN build_families AS b ON b.build_repository = a.repository
        WHERE a.scope = 'repository'
    ),
    contexts AS
    (
        SELECT
            af.af_subject AS c_subject,
            af.af_alert_key AS c_alert_key,
            arraySort(groupUniqArray(af.af_family)) AS c_families,
            arraySort(groupUniqArrayArray(fd.family_environments)) AS c_environments,
            arraySort(groupUniqArrayArray(fd.family_risks)) AS c_runtime_risks,
            arraySort(groupUniqArrayArray(fs.family_registries)) AS c_registries,
            arraySort(groupUniqArrayArray(fs.family_registry_hosts)) AS c_registry_hosts,
            arraySort(groupUniqArrayArray(fb.family_repositories)) AS c_build_repositories,
            max(fd.family_exposure_points) AS c_exposure_points,
            argMax(fd.family_exposure_top,
                   (fd.family_exposure_points, fd.family_environment_points, fd.family_exposure_top))
                AS c_exposure_top,
            max(fd.family_environment_points) AS c_environment_points
        FROM alert_families AS af
        LEFT JOIN family_deployments AS fd ON fd.family = af.af_family
        LEFT JOIN family_storage AS fs ON fs.family = af.af_family
        LEFT JOIN family_builds AS fb ON fb.family = af.af_family
        GROUP BY af.af_subject, af.af_alert_key
    )
SELECT
    a.subject AS subject,
    a.alert_key AS alert_key,
    a.scope AS scope,
    a.repository AS alert_repository,
    a.vulnerability_id AS vulnerability_id,
    a.severity AS severity,
    a.cvss AS cvss,
    a.epss AS epss,
    a.state AS state,
    a.tool AS tool,
    a.package AS package,
    a.title AS title,
    a.first_seen AS first_seen,
    a.updated_at AS updated_at,
    a.event_id AS event_id,
    c.c_families AS families,
    c.c_environments AS environments,
    c.c_runtime_risks AS runtime_risks,
    c.c_registries AS registries,
    c.c_registry_hosts AS registry_hosts,
    arraySort(arrayDistinct(arrayConcat(if(a.repository = '', [], [a.repository]), c.c_build_repositories)))
        AS repositories,
    toUInt8(notEmpty(c.c_environments)) AS deployed,
    toUInt32(transform(a.severity, ['critical', 'high', 'medium', 'low'], [40, 30, 15, 5], 0)) AS severity_points,
    toUInt32(least(20, round(ifNull(a.cvss, 0) * 2))) AS cvss_points,
    toUInt32(least(20, round(ifNull(a.epss, 0) * 20))) AS epss_points,
    toUInt32(c.c_exposure_points) AS exposure_points,
    c.c_exposure_top.1 AS exposure_environment,
    c.c_exposure_top.2 AS exposure_risks,
    toUInt32(c.c_environment_points) AS environment_points,
    severity_points + cvss_points + epss_points + exposure_points + environment_points AS score
FROM selected_alerts AS a
LEFT JOIN contexts AS c ON c.c_subject = a.subject AND c.c_alert_key = a.alert_key
SETTINGS join_use_nulls = 0;

CREATE VIEW IF NOT EXISTS storage_current AS SELECT * FROM storage_at(as_of = NULL);
CREATE VIEW IF NOT EXISTS deployment_slots_current AS SELECT * FROM deployment_slots_at(as_of = NULL);
CREATE VIEW IF NOT EXISTS deployments_current AS SELECT * FROM deployments_at(as_of = NULL);
CREATE VIEW IF NOT EXISTS alerts_current AS SELECT * FROM alerts_at(as_of = NULL);
CREATE VIEW IF NOT EXISTS builds_current AS SELECT * FROM builds_at(as_of = NULL);
CREATE VIEW IF NOT EXISTS links_current AS SELECT * FROM links_at(as_of = NULL);
CREATE VIEW IF NOT EXISTS alert_context_current AS SELECT * FROM alert_context_at(as_of = NULL);
