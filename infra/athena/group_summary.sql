-- group_summary (DESIGN.md "Report contract v1") over the tables of infra/athena/tables.sql, one row per
-- known group and period with Points, Redemption Summary or rewards staged, ordered as the Lambda's
-- group_summary.json (period, then numeric group id). Portable between Athena (Trino) and DuckDB:
-- test/integration/athena-sql.test.ts runs this very file on DuckDB and compares it with the Lambda.
--   * current files: per source object the newest committed ledger entry (sequencer, delivery time, id);
--     a staged row counts only if its object ("$path" = .../<fileId>.csv.gz) belongs to one.
--   * newest version per key over all periods (a re-sent row whose event date moved counts in its new
--     month only): version, then file delivery time, then file id.
--   * attribution (lib/domain/attribution.ts): stints from the membership snapshot; a stint counts on
--     from_date <= d < until_date, from = later of its joinedOn and the previous stints' exit dates,
--     until = the exit date (none while active); first-seen-exited memberships never count; of several
--     groups the default group wins, else the numerically smallest group id.
--   * members_total / members_*: members attributed on the period's last day (today in the current
--     month; current_date is UTC in Athena), with the newest Members row overall.
--   * decimals are integer thousandths, summed as BIGINT and formatted as the Lambda does (12.5, -3, 0).
--   * a figure the delivered exports cannot supply is empty (capabilities from the ledger snapshot).
WITH
committed AS (
  SELECT DISTINCT file_id, bucket, source_key, sequencer, delivered_at
  FROM ledger_files WHERE status = 'COMMITTED'
),
current_files AS (
  SELECT file_id, delivered_at FROM (
    SELECT file_id, delivered_at,
      row_number() OVER (
        PARTITION BY bucket, source_key
        ORDER BY lpad(sequencer, 32, '0') DESC, delivered_at DESC, file_id DESC
      ) AS rn
    FROM committed
  ) t WHERE rn = 1
),
caps AS (
  SELECT
    max(CASE WHEN l.template = 'points' AND CAST(l.rows_accepted AS BIGINT) > 0 THEN 1 ELSE 0 END) = 1 AS points,
    max(CASE WHEN l.template = 'points' AND CAST(l.rows_accepted AS BIGINT) > 0
             AND l.has_event_name = 'true' THEN 1 ELSE 0 END) = 1 AS event_name,
    max(CASE WHEN l.template = 'points_redemption_summary' AND CAST(l.rows_accepted AS BIGINT) > 0
             THEN 1 ELSE 0 END) = 1 AS redemption_summary,
    max(CASE WHEN l.template = 'members' AND CAST(l.rows_accepted AS BIGINT) > 0 THEN 1 ELSE 0 END) = 1 AS members,
    max(CASE WHEN l.template = 'rewards' AND CAST(l.rows_accepted AS BIGINT) > 0 THEN 1 ELSE 0 END) = 1 AS rewards
  FROM ledger_files l JOIN current_files f ON f.file_id = l.file_id
),
points_cur AS (
  SELECT * FROM (
    SELECT s.event_id, s.user_id, s.event_date, s.allocated, s.deducted, s.deduction_type, s.event_name, s.period,
      row_number() OVER (
        PARTITION BY s.event_id
        ORDER BY coalesce(CAST(NULLIF(s.version, '') AS BIGINT), 0) DESC, f.delivered_at DESC, f.file_id DESC
      ) AS rn
    FROM points s
    JOIN current_files f ON f.file_id = regexp_extract(s."$path", '([^/]+)\.csv\.gz$', 1)
  ) t WHERE rn = 1
),
redemptions_cur AS (
  SELECT * FROM (
    SELECT s.event_id, s.user_id, s.event_date, s.points_redeemed, s.redemption_type, s.period,
      row_number() OVER (
        PARTITION BY s.event_id
        ORDER BY coalesce(CAST(NULLIF(s.version, '') AS BIGINT), 0) DESC, f.delivered_at DESC, f.file_id DESC
      ) AS rn
    FROM points_redemption_summary s
    JOIN current_files f ON f.file_id = regexp_extract(s."$path", '([^/]+)\.csv\.gz$', 1)
  ) t WHERE rn = 1
),
rewards_cur AS (
  SELECT * FROM (
    SELECT s.reward_id, s.user_id, s.event_date, s.group_flag, s.period,
      row_number() OVER (
        PARTITION BY s.reward_id
        ORDER BY coalesce(CAST(NULLIF(s.version, '') AS BIGINT), 0) DESC, f.delivered_at DESC, f.file_id DESC
      ) AS rn
    FROM rewards s
    JOIN current_files f ON f.file_id = regexp_extract(s."$path", '([^/]+)\.csv\.gz$', 1)
  ) t WHERE rn = 1
),
members_cur AS (
  SELECT * FROM (
    SELECT s.user_id, s.loyalty_points, s.lifetime_points, s.lifetime_purchased, s.period,
      row_number() OVER (
        PARTITION BY s.user_id
        ORDER BY coalesce(CAST(NULLIF(s.version, '') AS BIGINT), 0) DESC, f.delivered_at DESC, f.file_id DESC
      ) AS rn
    FROM members s
    JOIN current_files f ON f.file_id = regexp_extract(s."$path", '([^/]+)\.csv\.gz$', 1)
  ) t WHERE rn = 1
),
periods AS (
  SELECT period FROM points_cur
  UNION SELECT period FROM redemptions_cur
  UNION SELECT period FROM rewards_cur
),
stints AS (
  SELECT group_id, user_id, CAST(stint AS INTEGER) AS stint,
    coalesce(default_group, '') = 'true' AS default_group,
    coalesce(active, '') = 'true' AS active,
    NULLIF(joined_on, '') AS joined_on,
    NULLIF(exit_seen_on, '') AS exit_on
  FROM memberships
  WHERE coalesce(first_seen_exited, '') <> 'true'
),
floored AS (
  SELECT s.*,
    max(exit_on) OVER (
      PARTITION BY group_id, user_id ORDER BY stint ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS floor_date
  FROM stints s
),
intervals AS (
  SELECT * FROM (
    SELECT group_id, user_id, default_group,
      CASE WHEN joined_on IS NULL THEN floor_date
           WHEN floor_date IS NULL OR joined_on > floor_date THEN joined_on
           ELSE floor_date END AS from_date,
      CASE WHEN active THEN NULL ELSE exit_on END AS until_date
    FROM floored
    WHERE active OR exit_on IS NOT NULL
  ) t
  WHERE from_date IS NULL OR until_date IS NULL OR from_date < until_date
),
activity AS (
  SELECT 'points' AS dataset, period, event_id AS row_key, user_id, event_date,
    coalesce(CAST(NULLIF(allocated, '') AS BIGINT), 0) AS allocated,
    coalesce(CAST(NULLIF(deducted, '') AS BIGINT), 0) AS deducted,
    coalesce(deduction_type, '') AS deduction_type, coalesce(event_name, '') AS event_name,
    CAST(0 AS BIGINT) AS redeemed_points, '' AS redemption_type, '' AS group_flag
  FROM points_cur WHERE substr(event_date, 1, 7) = period
  UNION ALL
  SELECT 'redemption', period, event_id, user_id, event_date, CAST(0 AS BIGINT), CAST(0 AS BIGINT), '', '',
    coalesce(CAST(NULLIF(points_redeemed, '') AS BIGINT), 0), coalesce(redemption_type, ''), ''
  FROM redemptions_cur WHERE substr(event_date, 1, 7) = period
  UNION ALL
  SELECT 'reward', period, reward_id, user_id, event_date, CAST(0 AS BIGINT), CAST(0 AS BIGINT), '', '',
    CAST(0 AS BIGINT), '', coalesce(group_flag, '')
  FROM rewards_cur WHERE substr(event_date, 1, 7) = period
),
attributed AS (
  SELECT * FROM (
    SELECT a.*, i.group_id,
      row_number() OVER (PARTITION BY a.dataset, a.period, a.row_key ORDER BY CASE WHEN i.default_group THEN 0 ELSE 1 END, try_cast(i.group_id AS DECIMAL(38, 0)) NULLS LAST, i.group_id) AS pick
    FROM activity a
    JOIN intervals i ON i.user_id = a.user_id AND (i.from_date IS NULL OR i.from_date <= a.event_date) AND (i.until_date IS NULL OR a.event_date < i.until_date)
  ) t WHERE pick = 1
),
activity_figures AS (
  SELECT period, group_id,
    count(DISTINCT CASE WHEN dataset <> 'reward' THEN user_id END) AS active_members,
    sum(allocated) AS awarded,
    sum(CASE WHEN event_name = 'grouptransactionadd' THEN allocated ELSE 0 END) AS group_txn,
    sum(CASE WHEN deduction_type = 'redeemed' THEN deducted ELSE 0 END) AS redeemed,
    sum(CASE WHEN deduction_type = 'expired' THEN deducted ELSE 0 END) AS expired,
    sum(CASE WHEN deduction_type IN ('return', 'return_historical') THEN deducted ELSE 0 END) AS returned,
    sum(CASE WHEN deduction_type IN ('redemption_reversal', 'redemption_reverted', 'expiry_reverted',
                                     'redeemed_by_transfer_reverted') THEN deducted ELSE 0 END) AS reversed,
    sum(CASE WHEN redemption_type = 'group_redemption' THEN 1 ELSE 0 END) AS wallet_count,
    sum(CASE WHEN redemption_type = 'group_redemption' THEN redeemed_points ELSE 0 END) AS wallet_points,
    sum(CASE WHEN redemption_type IN ('redemption', 'redeemed') THEN 1 ELSE 0 END) AS member_count,
    sum(CASE WHEN redemption_type IN ('redemption', 'redeemed') THEN redeemed_points ELSE 0 END) AS member_points,
    sum(CASE WHEN dataset = 'reward' AND group_flag = '1' THEN 1 ELSE 0 END) AS reward_count
  FROM attributed
  GROUP BY period, group_id
),
period_days AS (
  SELECT period,
    CASE WHEN substr(CAST(current_date AS VARCHAR), 1, 7) = period AND CAST(current_date AS VARCHAR) < last_day
         THEN CAST(current_date AS VARCHAR) ELSE last_day END AS on_date
  FROM (
    SELECT period,
      CAST(CAST(CAST(period || '-01' AS DATE) + INTERVAL '1' MONTH - INTERVAL '1' DAY AS DATE) AS VARCHAR) AS last_day
    FROM periods
  ) t
),
member_groups AS (
  SELECT period, group_id, user_id FROM (
    SELECT d.period, i.group_id, i.user_id,
      row_number() OVER (PARTITION BY d.period, i.user_id ORDER BY CASE WHEN i.default_group THEN 0 ELSE 1 END, try_cast(i.group_id AS DECIMAL(38, 0)) NULLS LAST, i.group_id) AS pick
    FROM period_days d
    JOIN intervals i ON (i.from_date IS NULL OR i.from_date <= d.on_date) AND (i.until_date IS NULL OR d.on_date < i.until_date)
  ) t WHERE pick = 1
),
member_figures AS (
  SELECT g.period, g.group_id, count(*) AS members_total,
    sum(coalesce(CAST(NULLIF(m.loyalty_points, '') AS BIGINT), 0)) AS balance,
    sum(coalesce(CAST(NULLIF(m.lifetime_points, '') AS BIGINT), 0)) AS lifetime_points,
    sum(coalesce(CAST(NULLIF(m.lifetime_purchased, '') AS BIGINT), 0)) AS lifetime_purchases
  FROM member_groups g LEFT JOIN members_cur m ON m.user_id = g.user_id
  GROUP BY g.period, g.group_id
),
wallets AS (
  SELECT group_id,
    sum(CAST(NULLIF(loyalty_points_thousandths, '') AS BIGINT)) AS balance,
    max(CASE WHEN program_index = '0' THEN coalesce(current_slab, '') END) AS tier
  FROM group_programs GROUP BY group_id
),
summary AS (
  SELECT p.period, g.group_id,
    coalesce(g.external_id, '') AS group_external_id, coalesce(g.name, '') AS group_name,
    coalesce(g.status, '') AS group_status,
    coalesce(mf.members_total, 0) AS members_total, coalesce(af.active_members, 0) AS active_members,
    coalesce(af.awarded, 0) AS awarded, coalesce(af.group_txn, 0) AS group_txn,
    coalesce(af.redeemed, 0) AS redeemed, coalesce(af.expired, 0) AS expired,
    coalesce(af.returned, 0) AS returned, coalesce(af.reversed, 0) AS reversed,
    coalesce(af.wallet_count, 0) AS wallet_count, coalesce(af.wallet_points, 0) AS wallet_points,
    coalesce(af.member_count, 0) AS member_count, coalesce(af.member_points, 0) AS member_points,
    coalesce(mf.balance, 0) AS balance, coalesce(mf.lifetime_points, 0) AS lifetime_points,
    coalesce(mf.lifetime_purchases, 0) AS lifetime_purchases,
    w.balance AS wallet_balance, coalesce(w.tier, '') AS group_tier,
    coalesce(af.reward_count, 0) AS reward_count
  FROM periods p
  CROSS JOIN group_metas g
  LEFT JOIN activity_figures af ON af.period = p.period AND af.group_id = g.group_id
  LEFT JOIN member_figures mf ON mf.period = p.period AND mf.group_id = g.group_id
  LEFT JOIN wallets w ON w.group_id = g.group_id
)
SELECT
  s.period,
  s.group_id,
  s.group_external_id,
  s.group_name,
  s.group_status,
  CAST(s.members_total AS VARCHAR) AS members_total,
  CAST(s.active_members AS VARCHAR) AS members_active_in_period,
  CASE WHEN c.points THEN CASE WHEN s.awarded IS NULL THEN '' ELSE CASE WHEN s.awarded < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.awarded) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.awarded) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.awarded) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS points_awarded,
  CASE WHEN c.points AND c.event_name THEN CASE WHEN s.group_txn IS NULL THEN '' ELSE CASE WHEN s.group_txn < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.group_txn) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.group_txn) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.group_txn) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS group_transaction_points,
  CASE WHEN c.points THEN CASE WHEN s.redeemed IS NULL THEN '' ELSE CASE WHEN s.redeemed < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.redeemed) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.redeemed) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.redeemed) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS points_redeemed,
  CASE WHEN c.points THEN CASE WHEN s.expired IS NULL THEN '' ELSE CASE WHEN s.expired < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.expired) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.expired) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.expired) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS points_expired,
  CASE WHEN c.points THEN CASE WHEN s.returned IS NULL THEN '' ELSE CASE WHEN s.returned < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.returned) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.returned) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.returned) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS points_returned,
  CASE WHEN c.points THEN CASE WHEN s.reversed IS NULL THEN '' ELSE CASE WHEN s.reversed < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.reversed) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.reversed) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.reversed) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS points_reversed,
  CASE WHEN c.redemption_summary THEN CAST(s.wallet_count AS VARCHAR) ELSE '' END AS group_wallet_redemptions,
  CASE WHEN c.redemption_summary THEN CASE WHEN s.wallet_points IS NULL THEN '' ELSE CASE WHEN s.wallet_points < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.wallet_points) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.wallet_points) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.wallet_points) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS group_wallet_points_redeemed,
  CASE WHEN c.redemption_summary THEN CAST(s.member_count AS VARCHAR) ELSE '' END AS member_redemptions,
  CASE WHEN c.redemption_summary THEN CASE WHEN s.member_points IS NULL THEN '' ELSE CASE WHEN s.member_points < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.member_points) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.member_points) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.member_points) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS member_points_redeemed,
  CASE WHEN c.members THEN CASE WHEN s.balance IS NULL THEN '' ELSE CASE WHEN s.balance < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.balance) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.balance) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.balance) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS members_points_balance,
  CASE WHEN c.members THEN CASE WHEN s.lifetime_points IS NULL THEN '' ELSE CASE WHEN s.lifetime_points < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.lifetime_points) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.lifetime_points) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.lifetime_points) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS members_lifetime_points,
  CASE WHEN c.members THEN CASE WHEN s.lifetime_purchases IS NULL THEN '' ELSE CASE WHEN s.lifetime_purchases < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.lifetime_purchases) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.lifetime_purchases) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.lifetime_purchases) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END ELSE '' END AS members_lifetime_purchases,
  CASE WHEN s.wallet_balance IS NULL THEN '' ELSE CASE WHEN s.wallet_balance < 0 THEN '-' ELSE '' END || CAST(CAST(substr(CAST(abs(s.wallet_balance) + 1000000000000000000 AS VARCHAR), 2, 15) AS BIGINT) AS VARCHAR) || CASE WHEN substr(CAST(abs(s.wallet_balance) + 1000000000000000000 AS VARCHAR), 17, 3) = '000' THEN '' ELSE '.' || regexp_replace(substr(CAST(abs(s.wallet_balance) + 1000000000000000000 AS VARCHAR), 17, 3), '0+$', '') END END AS group_wallet_balance,
  s.group_tier,
  CASE WHEN c.rewards THEN CAST(s.reward_count AS VARCHAR) ELSE '' END AS group_reward_redemptions
FROM summary s CROSS JOIN caps c
ORDER BY s.period, try_cast(s.group_id AS DECIMAL(38, 0)) NULLS LAST, s.group_id
