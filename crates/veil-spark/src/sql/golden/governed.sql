CREATE OR REPLACE TEMPORARY VIEW veil_source
USING parquet
OPTIONS (path '/data/events.parquet', recursiveFileLookup 'true');

CREATE OR REPLACE TEMPORARY VIEW veil_consent_log
USING parquet
OPTIONS (path '/data/consent.parquet', recursiveFileLookup 'true');

WITH
-- Retention: rows whose event_time is from 2026-05-05T00:00:00Z to 2026-11-01T00:00:00Z (UTC, in microseconds).
windowed AS (
  SELECT * FROM veil_source
    WHERE unix_micros(CAST(`event_time` AS TIMESTAMP)) BETWEEN 1777939200000000 AND 1793491200000000
),
-- Consent: each unit's latest event for purpose "analytics" at or before 2026-11-01T00:00:00Z (a revoke wins ties).
consent_events AS (
  SELECT TRY_CAST(`user_id` AS BIGINT) AS unit, CAST(`action` AS STRING) AS action,
      ROW_NUMBER() OVER (PARTITION BY TRY_CAST(`user_id` AS BIGINT) ORDER BY unix_micros(CAST(`at` AS TIMESTAMP)) DESC, (CAST(`action` AS STRING) = 'revoke') DESC NULLS LAST) AS latest
    FROM veil_consent_log
    WHERE CAST(`purpose` AS STRING) = 'analytics'
      AND unix_micros(CAST(`at` AS TIMESTAMP)) <= 1793491200000000
      AND TRY_CAST(`user_id` AS BIGINT) IS NOT NULL
),
-- Units with consent in force.
consented AS (
  SELECT unit FROM consent_events WHERE latest = 1 AND action = 'grant'
),
-- The columns the job reads, of units with consent in force.
source_rows AS (
  SELECT `user_id`, `country`, `value`, `event_time` FROM windowed
    WHERE `user_id` IN (SELECT unit FROM consented)
),
-- Query "by_country": rows with a privacy unit.
q0_rows AS (
  SELECT `user_id`, `country`, `value` FROM source_rows
    WHERE `user_id` IS NOT NULL
),
-- L∞: in each (unit, group), the 5 rows with the smallest keyed hashes.
q0_bounded AS (
  SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY `user_id`, `country` ORDER BY xxhash64(:veil_row_key, `user_id`, `country`, `value`, (IF(`user_id` IS NULL, 1L, 0L) + IF(`country` IS NULL, 2L, 0L) + IF(`value` IS NULL, 4L, 0L)))) AS veil_rank
    FROM q0_rows
  ) WHERE veil_rank <= 5
),
-- Each row's value per measure: fixed-point steps, clamped in integers; null for null or NaN.
q0_values AS (
  SELECT
    `user_id`,
    `country`,
    CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN 1 ELSE 0 END AS `values:value`,
    2 * CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(ROUND(LEAST(GREATEST(CAST(`value` AS DOUBLE) * 1.28e2D, 0e0D), 1.28e4D), 0) AS BIGINT) END - 12800L AS `centered_sum:value[0,100]`,
    (2 * CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(ROUND(LEAST(GREATEST(CAST(`value` AS DOUBLE) * 1e0D, 0e0D), 1e2D), 0) AS BIGINT) END - 100L) * (2 * CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(ROUND(LEAST(GREATEST(CAST(`value` AS DOUBLE) * 1e0D, 0e0D), 1e2D), 0) AS BIGINT) END - 100L) AS `centered_squares:value[0,100]`,
    CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(FLOOR(LEAST(GREATEST((CAST(`value` AS DOUBLE) - 0e0D) * 4.096e1D, 0.0D), 4.095e3D)) AS BIGINT) END AS `histogram:value[0,100]`
  FROM q0_bounded
),
-- Per (unit, group) sums; L0: each unit's 3 groups with the smallest keyed hashes.
q0_pairs AS (
  SELECT * FROM (
    SELECT
      `user_id`,
      `country`,
      COUNT(*) AS `rows`,
      COALESCE(SUM(`values:value`), 0) AS `values:value`,
      COALESCE(SUM(`centered_sum:value[0,100]`), 0) AS `centered_sum:value[0,100]`,
      COALESCE(SUM(`centered_squares:value[0,100]`), 0) AS `centered_squares:value[0,100]`,
      ROW_NUMBER() OVER (PARTITION BY `user_id` ORDER BY xxhash64(:veil_pair_key, `user_id`, `country`, (IF(`user_id` IS NULL, 1L, 0L) + IF(`country` IS NULL, 2L, 0L))), `country` ASC NULLS LAST) AS veil_rank
    FROM q0_values
    GROUP BY `user_id`, `country`
  ) WHERE veil_rank <= 3
),
-- Query "total": rows with a privacy unit.
q1_rows AS (
  SELECT `user_id`, `value` FROM source_rows
    WHERE `user_id` IS NOT NULL
),
-- L∞: in each (unit, group), the 5 rows with the smallest keyed hashes.
q1_bounded AS (
  SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY `user_id` ORDER BY xxhash64(:veil_row_key, `user_id`, `value`, (IF(`user_id` IS NULL, 1L, 0L) + IF(`value` IS NULL, 2L, 0L)))) AS veil_rank
    FROM q1_rows
  ) WHERE veil_rank <= 5
),
-- Each row's value per measure: fixed-point steps, clamped in integers; null for null or NaN.
q1_values AS (
  SELECT
    `user_id`,
    CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN 1 ELSE 0 END AS `values:value`,
    2 * CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(ROUND(LEAST(GREATEST(CAST(`value` AS DOUBLE) * 1.28e2D, 0e0D), 1.28e4D), 0) AS BIGINT) END - 12800L AS `centered_sum:value[0,100]`,
    (2 * CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(ROUND(LEAST(GREATEST(CAST(`value` AS DOUBLE) * 1e0D, 0e0D), 1e2D), 0) AS BIGINT) END - 100L) * (2 * CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(ROUND(LEAST(GREATEST(CAST(`value` AS DOUBLE) * 1e0D, 0e0D), 1e2D), 0) AS BIGINT) END - 100L) AS `centered_squares:value[0,100]`,
    CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(FLOOR(LEAST(GREATEST((CAST(`value` AS DOUBLE) - 0e0D) * 4.096e1D, 0.0D), 4.095e3D)) AS BIGINT) END AS `histogram:value[0,100]`
  FROM q1_bounded
),
-- Per (unit, group) sums; L0: each unit's 3 groups with the smallest keyed hashes.
q1_pairs AS (
  SELECT * FROM (
    SELECT
      `user_id`,
      COUNT(*) AS `rows`,
      COALESCE(SUM(`values:value`), 0) AS `values:value`,
      COALESCE(SUM(`centered_sum:value[0,100]`), 0) AS `centered_sum:value[0,100]`,
      COALESCE(SUM(`centered_squares:value[0,100]`), 0) AS `centered_squares:value[0,100]`,
      ROW_NUMBER() OVER (PARTITION BY `user_id` ORDER BY xxhash64(:veil_pair_key, `user_id`, (IF(`user_id` IS NULL, 1L, 0L)))) AS veil_rank
    FROM q1_values
    GROUP BY `user_id`
  ) WHERE veil_rank <= 3
)
-- The scan's counts, for the operator (not private, never released).
SELECT
  'count' AS result,
  CAST(NULL AS INT) AS query,
  counter AS name,
  CAST(NULL AS BIGINT) AS leaf,
  CAST(NULL AS STRING) AS k0,
  value AS v0,
  CAST(NULL AS BIGINT) AS v1,
  CAST(NULL AS BIGINT) AS v2,
  CAST(NULL AS BIGINT) AS v3,
  CAST(NULL AS BIGINT) AS v4
FROM (
  SELECT stack(3, 'rows_read', c0, 'rows_in_window', c1, 'rows_without_unit', c2) AS (counter, value)
  FROM (SELECT COUNT(*) AS c0, COUNT_IF(unix_micros(CAST(`event_time` AS TIMESTAMP)) BETWEEN 1777939200000000 AND 1793491200000000) AS c1, COUNT_IF((unix_micros(CAST(`event_time` AS TIMESTAMP)) BETWEEN 1777939200000000 AND 1793491200000000) AND `user_id` IS NULL) AS c2 FROM veil_source)
)
UNION ALL
SELECT
  'count' AS result,
  CAST(NULL AS INT) AS query,
  counter AS name,
  CAST(NULL AS BIGINT) AS leaf,
  CAST(NULL AS STRING) AS k0,
  value AS v0,
  CAST(NULL AS BIGINT) AS v1,
  CAST(NULL AS BIGINT) AS v2,
  CAST(NULL AS BIGINT) AS v3,
  CAST(NULL AS BIGINT) AS v4
FROM (
  SELECT stack(3, 'rows_with_consent', c0, 'units', c1, 'missing:value', c2) AS (counter, value)
  FROM (SELECT COUNT_IF(`user_id` IS NOT NULL) AS c0, COUNT(DISTINCT `user_id`) AS c1, COUNT_IF(`user_id` IS NOT NULL AND NOT (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE)))) AS c2 FROM source_rows)
)
UNION ALL
SELECT
  'count' AS result,
  CAST(NULL AS INT) AS query,
  counter AS name,
  CAST(NULL AS BIGINT) AS leaf,
  CAST(NULL AS STRING) AS k0,
  value AS v0,
  CAST(NULL AS BIGINT) AS v1,
  CAST(NULL AS BIGINT) AS v2,
  CAST(NULL AS BIGINT) AS v3,
  CAST(NULL AS BIGINT) AS v4
FROM (
  SELECT stack(1, 'unknown_actions', c0) AS (counter, value)
  FROM (SELECT COUNT_IF(CAST(`action` AS STRING) IS NOT NULL AND CAST(`action` AS STRING) NOT IN ('grant', 'revoke')) AS c0 FROM veil_consent_log)
)
UNION ALL
-- Query "by_country": per-group sums (v0 = rows, v1 = units, v2 = values:value, v3 = centered_sum:value[0,100], v4 = centered_squares:value[0,100]).
SELECT
  'groups' AS result,
  0 AS query,
  CAST(NULL AS STRING) AS name,
  CAST(NULL AS BIGINT) AS leaf,
  CAST(`country` AS STRING) AS k0,
  COALESCE(SUM(`rows`), 0) AS v0,
  COUNT(*) AS v1,
  COALESCE(SUM(`values:value`), 0) AS v2,
  COALESCE(SUM(`centered_sum:value[0,100]`), 0) AS v3,
  COALESCE(SUM(`centered_squares:value[0,100]`), 0) AS v4
FROM q0_pairs
GROUP BY `country`
UNION ALL
-- Query "by_country": rows per leaf of the quantile histogram of "value", in the surviving (unit, group) pairs.
SELECT
  'histogram' AS result,
  0 AS query,
  'histogram:value[0,100]' AS name,
  v.`histogram:value[0,100]` AS leaf,
  CAST(v.`country` AS STRING) AS k0,
  COUNT(*) AS v0,
  CAST(NULL AS BIGINT) AS v1,
  CAST(NULL AS BIGINT) AS v2,
  CAST(NULL AS BIGINT) AS v3,
  CAST(NULL AS BIGINT) AS v4
FROM q0_values AS v
LEFT SEMI JOIN q0_pairs AS p ON v.`user_id` <=> p.`user_id` AND v.`country` <=> p.`country`
WHERE v.`histogram:value[0,100]` IS NOT NULL
GROUP BY v.`country`, v.`histogram:value[0,100]`
UNION ALL
-- Query "total": per-group sums (v0 = rows, v1 = units, v2 = values:value, v3 = centered_sum:value[0,100], v4 = centered_squares:value[0,100]).
SELECT
  'groups' AS result,
  1 AS query,
  CAST(NULL AS STRING) AS name,
  CAST(NULL AS BIGINT) AS leaf,
  CAST(NULL AS STRING) AS k0,
  COALESCE(SUM(`rows`), 0) AS v0,
  COUNT(*) AS v1,
  COALESCE(SUM(`values:value`), 0) AS v2,
  COALESCE(SUM(`centered_sum:value[0,100]`), 0) AS v3,
  COALESCE(SUM(`centered_squares:value[0,100]`), 0) AS v4
FROM q1_pairs
UNION ALL
-- Query "total": rows per leaf of the quantile histogram of "value", in the surviving (unit, group) pairs.
SELECT
  'histogram' AS result,
  1 AS query,
  'histogram:value[0,100]' AS name,
  v.`histogram:value[0,100]` AS leaf,
  CAST(NULL AS STRING) AS k0,
  COUNT(*) AS v0,
  CAST(NULL AS BIGINT) AS v1,
  CAST(NULL AS BIGINT) AS v2,
  CAST(NULL AS BIGINT) AS v3,
  CAST(NULL AS BIGINT) AS v4
FROM q1_values AS v
LEFT SEMI JOIN q1_pairs AS p ON v.`user_id` <=> p.`user_id`
WHERE v.`histogram:value[0,100]` IS NOT NULL
GROUP BY v.`histogram:value[0,100]`;
