-- The Athena (Glue) table over what deploy/aws/firehose-delivery-stream.json
-- writes: one result message per line (docs/result-message.schema.json),
-- gzipped JSON lines under results/dt=YYYY-MM-DD/camera=<camera_id>/.
-- Partitions by capture date and camera; a box is its cameras (their ids
-- start with the line: line1-cam1). New partitions: MSCK REPAIR TABLE
-- matid.results (or a Glue crawler) after each day's first delivery.
-- Replace ACCOUNT_ID.
CREATE DATABASE IF NOT EXISTS matid;

CREATE EXTERNAL TABLE IF NOT EXISTS matid.results (
  message_id string,
  `timestamp` string,
  camera_id string,
  frame_seq bigint,
  model struct<name:string, version:string, variant:string, sha256:string>,
  predictions array<struct<label:string, score:double>>,
  top_label string,
  top_score double,
  needs_inspection boolean,
  latency_ms double,
  `trigger` struct<part_id:bigint, seq:int, recipe:int>
)
PARTITIONED BY (dt string, camera string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')
LOCATION 's3://matid-results-ACCOUNT_ID/results/'
TBLPROPERTIES ('compressionType' = 'gzip');
