CREATE OR REPLACE TEMPORARY VIEW veil_source
USING parquet
OPTIONS (path '/data/events.parquet', recursiveFileLookup 'true');

WITH
-- The columns the job reads.
source_rows AS (
  SELECT `user_id`, `country`, `feature`, `value` FROM veil_source
),
-- Query "by_pair": rows with a privacy unit, of the public partitions only.
q0_rows AS (
  SELECT r.* FROM (
    SELECT `user_id`, CAST(`country` AS STRING) AS `country`, CAST(`feature` AS STRING) AS `feature`, `value` FROM source_rows
    WHERE `user_id` IS NOT NULL
  ) AS r
  LEFT SEMI JOIN (VALUES ('FR', 'search'), ('DE', 'feed')) AS veil_keys(veil_k0, veil_k1) ON r.`country` = veil_keys.veil_k0 AND r.`feature` = veil_keys.veil_k1
),
-- L∞: in each (unit, group), the 5 rows with the smallest keyed hashes.
q0_bounded AS (
  SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY `user_id`, `country`, `feature` ORDER BY xxhash64(:veil_row_key, `user_id`, `country`, `feature`, `value`, (IF(`user_id` IS NULL, 1L, 0L) + IF(`country` IS NULL, 2L, 0L) + IF(`feature` IS NULL, 4L, 0L) + IF(`value` IS NULL, 8L, 0L)))) AS veil_rank
    FROM q0_rows
  ) WHERE veil_rank <= 5
),
-- Each row's value per measure: fixed-point steps, clamped in integers; null for null or NaN.
q0_values AS (
  SELECT
    `user_id`,
    `country`,
    `feature`,
    CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN 1 ELSE 0 END AS `values:value`,
    2 * CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(ROUND(LEAST(GREATEST(CAST(`value` AS DOUBLE) * 1.28e2D, 0e0D), 1.28e4D), 0) AS BIGINT) END - 12800L AS `centered_sum:value[0,100]`,
    (2 * CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(ROUND(LEAST(GREATEST(CAST(`value` AS DOUBLE) * 2e0D, 0e0D), 2e2D), 0) AS BIGINT) END - 200L) * (2 * CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(ROUND(LEAST(GREATEST(CAST(`value` AS DOUBLE) * 2e0D, 0e0D), 2e2D), 0) AS BIGINT) END - 200L) AS `centered_squares:value[0,100]`,
    CASE WHEN (`value` IS NOT NULL AND NOT isnan(CAST(`value` AS DOUBLE))) THEN CAST(FLOOR(LEAST(GREATEST((CAST(`value` AS DOUBLE) - 0e0D) * 4.096e1D, 0.0D), 4.095e3D)) AS BIGINT) END AS `histogram:value[0,100]`
  FROM q0_bounded
),
-- Per (unit, group) sums; L0: each unit's 3 groups with the smallest keyed hashes.
q0_pairs AS (
  SELECT * FROM (
    SELECT
      `user_id`,
      `country`,
      `feature`,
      COUNT(*) AS `rows`,
      COALESCE(SUM(`values:value`), 0) AS `values:value`,
      COALESCE(SUM(`centered_sum:value[0,100]`), 0) AS `centered_sum:value[0,100]`,
      COALESCE(SUM(`centered_squares:value[0,100]`), 0) AS `centered_squares:value[0,100]`,
      ROW_NUMBER() OVER (PARTITION BY `user_id` ORDER BY xxhash64(:veil_pair_key, `user_id`, `country`, `feature`, (IF(`user_id` IS NULL, 1L, 0L) + IF(`country` IS NULL, 2L, 0L) + IF(`feature` IS NULL, 4L, 0L))), `country` ASC NULLS LAST, `feature` ASC NULLS LAST) AS veil_rank
    FROM q0_values
    GROUP BY `user_id`, `country`, `feature`
  ) WHERE veil_rank <= 3
)
-- The scan's counts, for the operator (not private, never released).
SELECT
  'count' AS result,
  CAST(NULL AS INT) AS query,
  counter AS name,
  CAST(NULL AS BIGINT) AS leaf,
  CAST(NULL AS STRING) AS k0,
  CAST(NULL AS STRING) AS k1,
  value AS v0,
  CAST(NULL AS BIGINT) AS v1,
  CAST(NULL AS BIGINT) AS v2,
  CAST(NULL AS BIGINT) AS v3,
  CAST(NULL AS BIGINT) AS v4
FROM (
  SELECT stack(3, 'rows_read', c0, 'rows_in_window', c1, 'rows_without_unit', c2) AS (counter, value)
  FROM (SELECT COUNT(*) AS c0, COUNT(*) AS c1, COUNT_IF(`user_id` IS NULL) AS c2 FROM veil_source)
)
UNION ALL
SELECT
  'count' AS result,
  CAST(NULL AS INT) AS query,
  counter AS name,
  CAST(NULL AS BIGINT) AS leaf,
  CAST(NULL AS STRING) AS k0,
  CAST(NULL AS STRING) AS k1,
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
-- Query "by_pair": per-group sums (v0 = rows, v1 = units, v2 = values:value, v3 = centered_sum:value[0,100], v4 = centered_squares:value[0,100]).
SELECT
  'groups' AS result,
  0 AS query,
  CAST(NULL AS STRING) AS name,
  CAST(NULL AS BIGINT) AS leaf,
  CAST(`country` AS STRING) AS k0,
  CAST(`feature` AS STRING) AS k1,
  COALESCE(SUM(`rows`), 0) AS v0,
  COUNT(*) AS v1,
  COALESCE(SUM(`values:value`), 0) AS v2,
  COALESCE(SUM(`centered_sum:value[0,100]`), 0) AS v3,
  COALESCE(SUM(`centered_squares:value[0,100]`), 0) AS v4
FROM q0_pairs
GROUP BY `country`, `feature`
UNION ALL
-- Query "by_pair": rows per leaf of the quantile histogram of "value", in the surviving (unit, group) pairs.
SELECT
  'histogram' AS result,
  0 AS query,
  'histogram:value[0,100]' AS name,
  v.`histogram:value[0,100]` AS leaf,
  CAST(v.`country` AS STRING) AS k0,
  CAST(v.`feature` AS STRING) AS k1,
  COUNT(*) AS v0,
  CAST(NULL AS BIGINT) AS v1,
  CAST(NULL AS BIGINT) AS v2,
  CAST(NULL AS BIGINT) AS v3,
  CAST(NULL AS BIGINT) AS v4
FROM q0_values AS v
LEFT SEMI JOIN q0_pairs AS p ON v.`user_id` <=> p.`user_id` AND v.`country` <=> p.`country` AND v.`feature` <=> p.`feature`
WHERE v.`histogram:value[0,100]` IS NOT NULL
GROUP BY v.`country`, v.`feature`, v.`histogram:value[0,100]`;
