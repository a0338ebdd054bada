-- Athena tables over the staged data and the DynamoDB snapshots (DESIGN.md "Scale").
-- Run each statement in the Athena console or with `aws athena start-query-execution`, after replacing
--   EXPORTS_BUCKET  the staging bucket (the service stages under s3://EXPORTS_BUCKET/staging/)
--   SNAPSHOT_ROOT   where infra/athena/snapshot.ts's files were uploaded (s3://bucket/prefix)
-- Every column is STRING, as the staged CSV holds it (decimals are integer thousandths, dates
-- YYYY-MM-DD); group_summary.sql casts. Staged tables use partition projection (period=YYYY-MM,
-- part=NN), so no MSCK REPAIR is needed; raise projection.part.range if STAGING_PARTITIONS > 64.
-- The file id of a staged row is the name of its object ("$path"), which group_summary.sql joins
-- with the ledger snapshot: only the current version of each delivered file counts.
-- test/integration/athena-sql.test.ts turns each statement into a DuckDB view (read_csv over the same
-- layout, the object name as "$path"): keep one statement per table, in this shape.

CREATE EXTERNAL TABLE IF NOT EXISTS points (
  event_id STRING,
  user_id STRING,
  event_date STRING,
  allocated STRING,
  deducted STRING,
  deduction_type STRING,
  event_name STRING,
  version STRING
)
PARTITIONED BY (period STRING, part STRING)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
LOCATION 's3://EXPORTS_BUCKET/staging/points/'
TBLPROPERTIES (
  'skip.header.line.count' = '1',
  'projection.enabled' = 'true',
  'projection.period.type' = 'date',
  'projection.period.format' = 'yyyy-MM',
  'projection.period.range' = '2000-01,NOW',
  'projection.period.interval' = '1',
  'projection.period.interval.unit' = 'MONTHS',
  'projection.part.type' = 'integer',
  'projection.part.range' = '0,63',
  'projection.part.digits' = '2',
  'storage.location.template' = 's3://EXPORTS_BUCKET/staging/points/period=${period}/part=${part}/'
);

CREATE EXTERNAL TABLE IF NOT EXISTS points_redemption_summary (
  event_id STRING,
  user_id STRING,
  event_date STRING,
  points_redeemed STRING,
  redemption_type STRING,
  version STRING
)
PARTITIONED BY (period STRING, part STRING)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
LOCATION 's3://EXPORTS_BUCKET/staging/points_redemption_summary/'
TBLPROPERTIES (
  'skip.header.line.count' = '1',
  'projection.enabled' = 'true',
  'projection.period.type' = 'date',
  'projection.period.format' = 'yyyy-MM',
  'projection.period.range' = '2000-01,NOW',
  'projection.period.interval' = '1',
  'projection.period.interval.unit' = 'MONTHS',
  'projection.part.type' = 'integer',
  'projection.part.range' = '0,63',
  'projection.part.digits' = '2',
  'storage.location.template' = 's3://EXPORTS_BUCKET/staging/points_redemption_summary/period=${period}/part=${part}/'
);

CREATE EXTERNAL TABLE IF NOT EXISTS members (
  user_id STRING,
  loyalty_points STRING,
  lifetime_points STRING,
  lifetime_purchased STRING,
  tier STRING,
  version STRING
)
PARTITIONED BY (period STRING, part STRING)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
LOCATION 's3://EXPORTS_BUCKET/staging/members/'
TBLPROPERTIES (
  'skip.header.line.count' = '1',
  'projection.enabled' = 'true',
  'projection.period.type' = 'date',
  'projection.period.format' = 'yyyy-MM',
  'projection.period.range' = '2000-01,NOW',
  'projection.period.interval' = '1',
  'projection.period.interval.unit' = 'MONTHS',
  'projection.part.type' = 'integer',
  'projection.part.range' = '0,63',
  'projection.part.digits' = '2',
  'storage.location.template' = 's3://EXPORTS_BUCKET/staging/members/period=${period}/part=${part}/'
);

CREATE EXTERNAL TABLE IF NOT EXISTS rewards (
  reward_id STRING,
  user_id STRING,
  event_date STRING,
  group_flag STRING,
  version STRING
)
PARTITIONED BY (period STRING, part STRING)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
LOCATION 's3://EXPORTS_BUCKET/staging/rewards/'
TBLPROPERTIES (
  'skip.header.line.count' = '1',
  'projection.enabled' = 'true',
  'projection.period.type' = 'date',
  'projection.period.format' = 'yyyy-MM',
  'projection.period.range' = '2000-01,NOW',
  'projection.period.interval' = '1',
  'projection.period.interval.unit' = 'MONTHS',
  'projection.part.type' = 'integer',
  'projection.part.range' = '0,63',
  'projection.part.digits' = '2',
  'storage.location.template' = 's3://EXPORTS_BUCKET/staging/rewards/period=${period}/part=${part}/'
);

CREATE EXTERNAL TABLE IF NOT EXISTS ledger_files (
  file_id STRING,
  bucket STRING,
  source_key STRING,
  sequencer STRING,
  delivered_at STRING,
  status STRING,
  template STRING,
  rows_accepted STRING,
  has_event_name STRING
)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
LOCATION 'SNAPSHOT_ROOT/snapshots/ledger_files/'
TBLPROPERTIES ('skip.header.line.count' = '1');

CREATE EXTERNAL TABLE IF NOT EXISTS memberships (
  group_id STRING,
  user_id STRING,
  role STRING,
  default_group STRING,
  first_seen_exited STRING,
  stint STRING,
  joined_on STRING,
  active STRING,
  exit_seen_at STRING,
  exit_seen_on STRING
)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
LOCATION 'SNAPSHOT_ROOT/snapshots/memberships/'
TBLPROPERTIES ('skip.header.line.count' = '1');

CREATE EXTERNAL TABLE IF NOT EXISTS group_metas (
  group_id STRING,
  external_id STRING,
  name STRING,
  status STRING,
  synced_at STRING
)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
LOCATION 'SNAPSHOT_ROOT/snapshots/group_metas/'
TBLPROPERTIES ('skip.header.line.count' = '1');

CREATE EXTERNAL TABLE IF NOT EXISTS group_programs (
  group_id STRING,
  program_index STRING,
  program_id STRING,
  loyalty_points_thousandths STRING,
  current_slab STRING
)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
LOCATION 'SNAPSHOT_ROOT/snapshots/group_programs/'
TBLPROPERTIES ('skip.header.line.count' = '1');
