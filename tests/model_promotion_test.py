#!/usr/bin/python3
"""Shadow promotion and rollback by policy, end to end: the real
matid-server binary (LibTorch) serving a repository with two versions of
the test model, matid-admin setting the shadow and its rules, a real
mosquitto as the box's broker, matid-bridge, and a second mosquitto as the
cloud (loopback only; every loop bounded in count and time).

The two versions are the same random-weight model, so the shadow agrees on
every image and its promotion rule (20 compared, agreement 1) holds; the
model is never 99% sure, so with a rollback rule of "more than half the
answers under 0.99" the promoted version is rolled back after 20 images.
Checked: both happen by themselves, in that order; each event reaches the
cloud broker on matid/<box>/events through the bridge, valid against
docs/event-message.schema.json; the metric counts them; matid-admin lists
the rollback target while the window is open; version_policy.json ends
pinned to version 1 with no window.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import cv2
import jsonschema
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
MODEL_DIR = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))
BIN = os.path.join(BUILD, "bin")
SCHEMA = json.load(open(os.path.join(ROOT, "docs", "event-message.schema.json")))
sys.path.insert(0, os.path.join(BUILD, "python"))

import grpc  # noqa: E402
from model_export import repository  # noqa: E402
from tests.edge_harness import Collector, Mosquitto, Process, scrape, wait_for  # noqa: E402
from matid.v1 import matid_pb2, matid_pb2_grpc  # noqa: E402

MODEL = "parts"
BOX = "box-test"
PNG = cv2.imencode(".png", np.full((28, 28), 90, np.uint8))[1].tobytes()


class ModelPromotionTest(unittest.TestCase):
    def setUp(self) -> None:
        if not os.path.isdir(MODEL_DIR):
            self.skipTest("the test model is not built")
        self.tmp = tempfile.mkdtemp(prefix="matid-promotion-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.repo = os.path.join(self.tmp, "repo")
        self.assertEqual(repository.publish(MODEL_DIR, self.repo, MODEL), 1)
        self.assertEqual(repository.publish(MODEL_DIR, self.repo, MODEL), 2)
        with open(self.policy_path(), "w") as f:
            f.write('{"policy": "specific", "versions": [1]}\n')
        local = Mosquitto(self.tmp, "local")
        self.addCleanup(local.stop)
        cloud = Mosquitto(self.tmp, "cloud")
        self.addCleanup(cloud.stop)
        self.cloud_events = Collector(cloud.port, client_id="cloud-events",
                                      topic="matid/+/events")
        self.addCleanup(self.cloud_events.close)
        bridge = Process([os.path.join(BIN, "matid-bridge"), "--local_port", str(local.port),
                          "--cloud_endpoint", "127.0.0.1", "--cloud_port", str(cloud.port),
                          "--cloud_insecure_plaintext", "--cloud_client_id", "matid-edge-test",
                          "--spool_path", os.path.join(self.tmp, "spool.db"),
                          "--metrics_port", "-1", "--spool_sync_full", "false"],
                         r"metrics_port=(-?\d+)", os.path.join(self.tmp, "bridge.log"))
        self.addCleanup(bridge.stop)
        wait_for(lambda: f"local broker 127.0.0.1:{local.port} connected" in bridge.output(), 30,
                 "the bridge to connect to the local broker")
        self.server = Process(
            [os.path.join(BIN, "matid-server"), f"--model_repository={self.repo}",
             "--host=127.0.0.1", "--port=0", "--metrics_host=127.0.0.1", "--metrics_port=0",
             "--threads=1", "--lame_duck_ms=0", "--shadow_priority=normal",
             "--events_mqtt_host=127.0.0.1", f"--events_mqtt_port={local.port}",
             f"--box_id={BOX}"],
            r"serving grpc_port=(\d+) metrics_port=(\d+)", os.path.join(self.tmp, "server.log"))
        self.addCleanup(self.server.stop)
        self.port = int(self.server.match.group(1))
        self.metrics_port = int(self.server.match.group(2))
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.addCleanup(self.channel.close)
        self.stub = matid_pb2_grpc.ClassifierStub(self.channel)

    def policy_path(self) -> str:
        return os.path.join(self.repo, MODEL, "version_policy.json")

    def admin(self, *args: str) -> str:
        done = subprocess.run([os.path.join(BIN, "matid-admin"), f"--server=127.0.0.1:{self.port}",
                               *args], capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout

    def classify_until_serving(self, version: str, limit: int = 400) -> int:
        """Classifies one image at a time until `version` answers; the calls made."""
        request = matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=PNG), model=MODEL)
        deadline = time.monotonic() + 120
        for calls in range(1, limit + 1):
            response = self.stub.Classify(request, timeout=10)
            if response.model.version == version:
                return calls
            self.assertLess(time.monotonic(), deadline, f"version {version} never served")
            time.sleep(0.01)
        self.fail(f"version {version} did not serve after {limit} images")

    def test_the_policy_promotes_the_shadow_then_rolls_it_back_and_the_cloud_hears_both(
            self) -> None:
        listed = self.admin("shadow", MODEL, "2", "1.0", "--promote_after=20", "--min_agreement=1",
                            "--max_shadow_p99_ms=10000", "--rollback_low_confidence_below=0.99",
                            "--rollback_max_low_confidence_ratio=0.5", "--rollback_min_images=20")
        self.assertRegex(listed, r"parts\s+2\s+AVAILABLE\s+shadow")
        with open(self.policy_path()) as f:
            self.assertIn('"promote_when": {"min_compared": 20, "min_agreement": 1', f.read())

        self.classify_until_serving("2")
        listed = self.admin("list")
        self.assertRegex(listed, r"parts\s+1\s+AVAILABLE\s+rollback")
        self.assertRegex(listed, r"parts\s+2\s+AVAILABLE\s+yes")
        with open(self.policy_path()) as f:
            self.assertIn('"versions": [2], "rollback": {"version": 1', f.read())

        # The random model is never 99% sure: after 20 answers it is rolled back.
        calls = self.classify_until_serving("1")
        self.assertGreaterEqual(calls, 20)
        with open(self.policy_path()) as f:
            self.assertEqual(f.read(), '{"policy": "specific", "versions": [1]}\n')

        wait_for(lambda: len(self.cloud_events.payloads) >= 2, 30, "two events at the cloud")
        # The server counts every event it publishes: two (after the rollback
        # no rule is left to make another), and the cloud got exactly those.
        metrics = scrape(self.metrics_port)
        self.assertEqual(metrics["matid_events_published_total"], 2)
        events = list(self.cloud_events.payloads)
        self.assertEqual([e["type"] for e in events], ["promotion", "rollback"])
        for event in events:
            jsonschema.validate(event, SCHEMA)
            self.assertEqual(event["box_id"], BOX)
            self.assertEqual(event["model"], MODEL)
            self.assertEqual(event["trigger"], "policy")
        promotion, rollback = events
        self.assertEqual((promotion["from_version"], promotion["to_version"]), (1, 2))
        self.assertGreaterEqual(promotion["figures"]["compared"], 20)
        self.assertEqual(promotion["figures"]["agreement"], 1.0)
        self.assertEqual((rollback["from_version"], rollback["to_version"]), (2, 1))
        self.assertIn("low-confidence ratio 1.0000 > 0.5", rollback["reason"])
        self.assertGreaterEqual(rollback["figures"]["low_confidence"], 20)

        for kind in ("promotion", "rollback"):
            self.assertEqual(metrics[f'matid_model_events_total{{model="{MODEL}",trigger="policy",'
                                     f'type="{kind}"}}'], 1)
        log = self.server.output()
        self.assertIn("promotion version 1 -> 2 (policy: ", log)
        self.assertIn("rollback version 2 -> 1 (policy: low-confidence ratio", log)


if __name__ == "__main__":
    unittest.main()
