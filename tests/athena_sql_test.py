#!/usr/bin/python3
"""The cloud analytics after IoT Analytics (deploy/aws/athena/), checked
without AWS: result messages as the bridge publishes them (single and JSON
lines batches, with at-least-once repeats) go through the Firehose stream's
own processing (deaggregation, then its MetadataExtractionQuery run by
Debian's jq 1.6, the engine Firehose names) into S3 keys under its Prefix;
the keys must be the Hive layout the Athena table is partitioned by, and
the table's columns must be the result message schema's fields. Then each
query runs in SQLite over the same files, with the partition columns read
from the keys as Athena does, and must give what Python counts from the
messages.

Athena (Trino) is not packaged in Debian: SQLite stands in, with Trino's
functions the queries use (date_trunc, from_iso8601_timestamp, split_part)
defined in Python and struct fields (model.name) read as flattened columns.
That checks the queries' logic and partition filters, not Trino's parser.
"""
import collections
import datetime
import gzip
import json
import os
import re
import sqlite3
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
AWS = os.path.join(ROOT, "deploy", "aws")
ATHENA = os.path.join(AWS, "athena")
SCHEMA = os.path.join(ROOT, "docs", "result-message.schema.json")
CAMERAS = ("line1-cam1", "line1-cam2", "line2-cam1")
LABELS = ("Bag", "Sneaker", "Shirt")


def messages() -> list:
    """Three cameras over two days, a promotion from version 3 to 4 on the
    second day, about a third needing inspection."""
    out = []
    start = datetime.datetime(2026, 12, 6, 22, 0, tzinfo=datetime.timezone.utc)
    for i in range(360):
        camera = CAMERAS[i % 3]
        at = start + datetime.timedelta(minutes=i)
        out.append({
            "message_id": f"{camera}-boot-{i}",
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
            "camera_id": camera, "frame_seq": i,
            "model": {"name": "parts", "version": "3" if i < 200 else "4",
                      "variant": "fp32", "sha256": "0123456789ab"},
            "predictions": [{"label": LABELS[i % 3 if i % 7 else 0], "score": 0.9}],
            "top_label": LABELS[i % 3 if i % 7 else 0], "top_score": 0.9 if i % 3 else 0.4,
            "needs_inspection": i % 3 == 0, "latency_ms": 12.0})
    return out


def bridge_payloads(results: list) -> list:
    """What the bridge publishes: single messages, then a backlog drained as
    JSON lines batches of 50, and a batch resent after a lost PUBACK."""
    payloads = [json.dumps(m) for m in results[:100]]
    for i in range(100, len(results), 50):
        payloads.append("\n".join(json.dumps(m) for m in results[i:i + 50]))
    payloads.append(payloads[-1])  # at least once: the same ids again
    return payloads


def firehose_processors() -> dict:
    with open(os.path.join(AWS, "firehose-delivery-stream.json")) as f:
        stream = json.load(f)["ExtendedS3DestinationConfiguration"]
    processors = {p["Type"]: {q["ParameterName"]: q["ParameterValue"] for q in p["Parameters"]}
                  for p in stream["ProcessingConfiguration"]["Processors"]}
    return stream, processors


def deliver(payloads: list, bucket: str) -> list:
    """Firehose with dynamic partitioning: deaggregate each record into its
    JSON objects, extract the partition keys with jq, write each object
    (newline delimited, gzipped) under the Prefix. Returns the keys."""
    stream, processors = firehose_processors()
    assert processors["RecordDeAggregation"]["SubRecordType"] == "JSON"
    query = processors["MetadataExtraction"]["MetadataExtractionQuery"]
    assert processors["MetadataExtraction"]["JsonParsingEngine"] == "JQ-1.6"
    records = [line for payload in payloads for line in payload.split("\n") if line]
    keys_out = subprocess.run(["jq", "-c", query], input="\n".join(records), text=True,
                              capture_output=True, check=True).stdout.splitlines()
    objects = collections.defaultdict(list)
    for record, keys in zip(records, keys_out):
        keys = json.loads(keys)
        prefix = re.sub(r"!\{partitionKeyFromQuery:(\w+)\}", lambda m: keys[m.group(1)],
                        stream["Prefix"])
        objects[prefix].append(record)
    written = []
    for prefix, lines in objects.items():
        key = prefix + "matid-results-1.gz"
        path = os.path.join(bucket, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with gzip.open(path, "wt") as f:
            f.write("\n".join(lines) + "\n")
        written.append(key)
    return written


def table_definition() -> tuple:
    with open(os.path.join(ATHENA, "create-table.sql")) as f:
        ddl = f.read()
    body = re.search(r"CREATE EXTERNAL TABLE IF NOT EXISTS matid\.results \((.*?)\)\s*PARTITIONED",
                     ddl, re.S).group(1)
    columns = dict(re.findall(r"^\s*`?(\w+)`?\s+(\S.*?),?$", body, re.M))
    partitions = re.findall(r"(\w+) string", re.search(r"PARTITIONED BY \((.*?)\)", ddl).group(1))
    location = re.search(r"LOCATION 's3://[^/]+/(.*?)'", ddl).group(1)
    return columns, partitions, location


# Trino's functions the queries use, as SQLite functions.
def date_trunc(unit: str, value: str) -> str:
    at = datetime.datetime.fromisoformat(value)
    assert unit == "hour", unit
    return at.replace(minute=0, second=0, microsecond=0).isoformat()


def from_iso8601_timestamp(value: str) -> str:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()


def split_part(value: str, delimiter: str, index: int) -> str:
    parts = value.split(delimiter)
    return parts[index - 1] if index <= len(parts) else None


def athena_stand_in(bucket: str, location: str) -> sqlite3.Connection:
    """matid.results over the delivered files; dt and camera from each key."""
    db = sqlite3.connect(":memory:")
    db.execute("ATTACH DATABASE ':memory:' AS matid")
    db.execute("CREATE TABLE matid.results (message_id, \"timestamp\", camera_id, frame_seq, "
               "model_name, model_version, top_label, top_score, needs_inspection, latency_ms, "
               "dt, camera)")
    for directory, _, files in os.walk(os.path.join(bucket, location)):
        partition = dict(re.findall(r"(\w+)=([^/]+)", os.path.relpath(directory, bucket)))
        for name in files:
            with gzip.open(os.path.join(directory, name), "rt") as f:
                for line in f:
                    m = json.loads(line)
                    db.execute("INSERT INTO matid.results VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                               (m["message_id"], m["timestamp"], m["camera_id"], m["frame_seq"],
                                m["model"]["name"], m["model"]["version"], m["top_label"],
                                m["top_score"], m["needs_inspection"], m["latency_ms"],
                                partition["dt"], partition["camera"]))
    db.create_function("date_trunc", 2, date_trunc)
    db.create_function("from_iso8601_timestamp", 1, from_iso8601_timestamp)
    db.create_function("split_part", 3, split_part)
    return db


def run_query(db: sqlite3.Connection, name: str) -> list:
    with open(os.path.join(ATHENA, name)) as f:
        sql = f.read()
    sql = re.sub(r"\bmodel\.(\w+)", r"model_\1", sql)  # struct fields, flattened
    return db.execute(sql).fetchall()


class AthenaSqlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.results = messages()
        cls.bucket = tempfile.mkdtemp(prefix="matid-s3-")
        cls.keys = deliver(bridge_payloads(cls.results), cls.bucket)
        cls.columns, cls.partitions, cls.location = table_definition()
        cls.db = athena_stand_in(cls.bucket, cls.location)

    def test_keys_are_the_tables_partition_layout(self) -> None:
        self.assertEqual(self.partitions, ["dt", "camera"])
        layout = re.compile(re.escape(self.location) +
                            r"dt=(\d{4}-\d\d-\d\d)/camera=([\w.-]+)/[^/]+\.gz$")
        seen = set()
        for key in self.keys:
            match = layout.match(key)
            self.assertIsNotNone(match, key)
            seen.add(match.groups())
        expected = {(m["timestamp"][:10], m["camera_id"]) for m in self.results}
        self.assertEqual(seen, expected)
        self.assertEqual(len(seen), 6, "two days, three cameras")

    def test_columns_are_the_result_messages_fields(self) -> None:
        with open(SCHEMA) as f:
            schema = json.load(f)
        self.assertEqual(set(self.columns), set(schema["properties"]))
        types = {"string": "string", "integer": "bigint", "number": "double", "boolean": "boolean"}
        for name, spec in schema["properties"].items():
            if spec.get("type") in types:
                self.assertEqual(self.columns[name], types[spec["type"]], name)
        model_fields = set(re.findall(r"(\w+):", self.columns["model"]))
        self.assertEqual(model_fields, set(schema["properties"]["model"]["properties"]))

    def test_parts_per_class_per_hour(self) -> None:
        rows = run_query(self.db, "parts-per-class-per-hour.sql")
        expected = collections.Counter()
        for m in self.results:
            hour = from_iso8601_timestamp(m["timestamp"][:13] + ":00:00Z")
            expected[(hour, m["camera_id"], m["top_label"])] += 1
        self.assertEqual({(h, c, label): n for h, c, label, n in rows}, dict(expected))
        self.assertEqual(sum(n for *_, n in rows), len(self.results), "repeats counted once")

    def test_needs_inspection_rate_per_line(self) -> None:
        rows = run_query(self.db, "needs-inspection-rate-per-line.sql")
        by_line = collections.defaultdict(lambda: [0, 0])
        for m in self.results:
            key = (m["camera_id"].split("-")[0], m["timestamp"][:10])
            by_line[key][0] += 1
            by_line[key][1] += m["needs_inspection"]
        self.assertEqual(len(rows), len(by_line))
        for line, dt, parts, flagged, rate in rows:
            self.assertEqual([parts, flagged], by_line[(line, dt)], (line, dt))
            self.assertAlmostEqual(rate, flagged / parts)

    def test_model_version_in_use(self) -> None:
        rows = run_query(self.db, "model-version-in-use.sql")
        versions = collections.defaultdict(set)
        for camera, dt, model, version, frames, first, last in rows:
            self.assertEqual(model, "parts")
            versions[(camera, dt)].add(version)
        # Version 3 until the promotion (message 200, on the second day), 4 after.
        self.assertEqual(versions[("line1-cam1", "2026-12-06")], {"3"})
        self.assertEqual(versions[("line1-cam1", "2026-12-07")], {"3", "4"})
        total = sum(row[4] for row in rows)
        self.assertEqual(total, len(self.results))


if __name__ == "__main__":
    unittest.main()
