#!/usr/bin/python3
"""matid-sparkplug as a Sparkplug B 3.0 edge node, checked by an
Ignition-style host application that decodes every payload with Eclipse
Tahu's codec (npm `sparkplug-payload`, installed by scripts/install-deps.sh
into tests/sparkplug/): a real local mosquitto with camera results, a real
plant mosquitto, a real matid-server for the node's model metrics.

Checked: NBIRTH (bdSeq, Node Control/Rebirth, the model), a DBIRTH per
camera before its DDATA, DDATA by alias with the result's values, seq
0..255 continuous in each session, 600 frames of a real camera giving DDATA
for all 600 results with none lost across a plant broker restart (those stored meanwhile flagged
is_historical), births held until a primary host's STATE says online and
NDEATH plus a new connection when it goes offline, NDEATH delivered as the will with the NBIRTH's bdSeq when
the node is SIGKILLed, a rebirth on NCMD, a DDEATH for a silent camera,
TLS with username and password, and refused flags and results."""
import base64
import datetime
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt

from tests.edge_harness import (Collector, Mosquitto, Process, free_port, make_certificates,
                                make_conveyor_video, scrape, wait_connected, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))
CODEC = os.path.join(HERE, "sparkplug", "codec.js")
GROUP, NODE = "line-3", "box-7"
DEVICE_METRICS = {"Result/Class", "Result/Score", "Result/Needs Inspection", "Result/Latency ms",
                  "Result/Part ID", "Result/Frame Seq", "Result/Message ID", "Model/Version"}


class TahuCodec:
    """Eclipse Tahu's JavaScript codec in a node process (tests/sparkplug/codec.js)."""

    def __init__(self) -> None:
        if not os.path.isdir(os.path.join(HERE, "sparkplug", "node_modules", "sparkplug-payload")):
            raise AssertionError("tests/sparkplug/node_modules/sparkplug-payload is missing: "
                                 "run scripts/install-deps.sh (npm ci in tests/sparkplug)")
        self.process = subprocess.Popen(["node", CODEC], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.lock = threading.Lock()

    def _ask(self, line: str) -> str:
        with self.lock:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            return self.process.stdout.readline()

    def decode(self, payload: bytes) -> dict:
        decoded = json.loads(self._ask("D " + base64.b64encode(payload).decode()))
        if "error" in decoded:
            raise AssertionError(f"Tahu cannot decode a payload: {decoded['error']}")
        return decoded

    def encode(self, payload: dict) -> bytes:
        return base64.b64decode(self._ask("E " + json.dumps(payload)))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


class HostApplication:
    """What Ignition's MQTT Engine does with an edge node's messages: records
    every spBv1.0 message of the group, decoded, and resolves DDATA aliases
    to names from the DBIRTHs."""

    def __init__(self, port: int, codec: TahuCodec) -> None:
        self.codec = codec
        self.raw = []  # (topic, payload bytes)
        self.lock = threading.Lock()
        self.client = mqtt.Client(client_id="host-application", clean_session=True)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc: c.subscribe(f"spBv1.0/{GROUP}/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, qos: subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(30):
            raise AssertionError("host application not subscribed")
        self.decoded = []  # (topic, payload dict), in arrival order

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.raw.append((message.topic, bytes(message.payload)))

    def messages(self) -> list:
        with self.lock:
            new = self.raw[len(self.decoded):]
        for topic, payload in new:
            self.decoded.append((topic, self.codec.decode(payload)))
        return list(self.decoded)

    def of_type(self, kind: str) -> list:
        return [(t, p) for t, p in self.messages() if t.split("/")[2] == kind]

    def command(self, payload: dict) -> None:
        self.client.publish(f"spBv1.0/{GROUP}/NCMD/{NODE}", self.codec.encode(payload), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def metrics_by_name(payload: dict) -> dict:
    return {m["name"]: m for m in payload["metrics"]}


def result(camera: str, seq: int, part_id: int = None) -> str:
    message = {
        "message_id": f"{camera}-boot1-{seq}", "timestamp": "2026-12-07T06:00:00.250Z",
        "camera_id": camera, "frame_seq": seq,
        "model": {"name": "fashion", "version": "3", "variant": "fp32", "sha256": "0123456789ab"},
        "predictions": [{"label": "Bag", "score": 0.75}], "top_label": "Bag", "top_score": 0.75,
        "needs_inspection": seq % 2 == 1, "latency_ms": 12.5}
    if part_id is not None:
        message["trigger"] = {"part_id": part_id, "seq": seq % 65536, "recipe": 1}
    return json.dumps(message)


class SparkplugNodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.codec = TahuCodec()
        cls.dir = tempfile.mkdtemp(prefix="matid-sparkplug-")
        cls.server_port = free_port()
        cls.server = Process(
            [os.path.join(BUILD, "bin", "matid-server"), f"--model_dir={MODEL}",
 "--host=127.0.0.1", f"--port={cls.server_port}", "--metrics_port=-1",
             "--threads=1"],
            r"serving grpc_port=(\d+)", os.path.join(cls.dir, "server.log"))
        with open(os.path.join(MODEL, "metadata.json")) as f:
            cls.model_name = json.load(f)["name"]

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()
        cls.codec.close()

    def setUp(self) -> None:
        self.work = tempfile.mkdtemp(dir=self.dir)
        self.local = Mosquitto(self.work, "local")
        self.plant = Mosquitto(self.work, "plant")
        self.host = HostApplication(self.plant.port, self.codec)
        self.camera = Collector(self.local.port, client_id="camera", subscribe=False)
        self.node = None

    def tearDown(self) -> None:
        if self.node:
            self.node.stop(signal.SIGKILL)
        self.camera.close()
        self.host.close()
        self.plant.stop()
        self.local.stop()

    def start_node(self, *extra: str, plant_port: int = None) -> Process:
        self.node = Process(
            [os.path.join(BUILD, "bin", "matid-sparkplug"), f"--sparkplug_group={GROUP}",
             f"--sparkplug_node={NODE}", f"--plant_port={plant_port or self.plant.port}",
             "--plant_host=127.0.0.1", f"--local_port={self.local.port}",
             f"--server=127.0.0.1:{self.server_port}", "--health_interval_seconds=1",
             f"--spool_path={os.path.join(self.work, 'spool.db')}", "--metrics_port=0",
             *extra],
            r"metrics_port=(\d+)", os.path.join(self.work, "node.log"))
        return self.node

    def publish(self, camera: str, seq: int, part_id: int = None) -> None:
        self.camera.client.publish(f"matid/{camera}/results", result(camera, seq, part_id), qos=1)

    def wait_births(self, count: int) -> list:
        return wait_for(lambda: (b := self.host.of_type("NBIRTH")) and len(b) >= count and b,
                        30, f"{count} NBIRTH")

    def ddata_ids(self) -> set:
        """Result/Message ID of every DDATA, aliases resolved by the DBIRTHs."""
        aliases, ids = {}, []
        for topic, payload in self.host.messages():
            kind = topic.split("/")[2]
            if kind == "DBIRTH":
                aliases.update({m["alias"]: m["name"] for m in payload["metrics"]})
            elif kind == "DDATA":
                named = {aliases[m["alias"]]: m for m in payload["metrics"]}
                ids.append(named["Result/Message ID"]["value"])
        return ids

    def check_sessions(self) -> None:
        """seq 0 at each NBIRTH, +1 mod 256 after, over every message but
        NDEATH; DBIRTH before a device's DDATA in every session."""
        seq, born = None, set()
        for topic, payload in self.host.messages():
            parts = topic.split("/")
            kind = parts[2]
            if kind in ("NCMD", "DCMD"):
                continue  # the host's own commands
            if kind == "NDEATH":
                self.assertNotIn("seq", payload, "NDEATH carries no seq")
                seq, born = None, set()
                continue
            if kind == "NBIRTH":
                self.assertEqual(payload["seq"], 0, "NBIRTH seq is 0")
                seq, born = 0, set()
                continue
            self.assertIsNotNone(seq, f"{topic} before any NBIRTH")
            self.assertEqual(payload["seq"], (seq + 1) % 256, f"seq continues on {topic}")
            seq = payload["seq"]
            self.assertIn("timestamp", payload)
            if kind == "DBIRTH":
                born.add(parts[4])
            elif kind == "DDEATH":
                born.discard(parts[4])
            elif kind == "DDATA":
                self.assertIn(parts[4], born, f"DDATA of {parts[4]} without its DBIRTH")

    def test_births_and_data_with_aliases(self) -> None:
        self.start_node()
        births = self.wait_births(1)
        topic, nbirth = births[0]
        self.assertEqual(topic, f"spBv1.0/{GROUP}/NBIRTH/{NODE}")
        metrics = metrics_by_name(nbirth)
        self.assertEqual(metrics["bdSeq"]["type"], "Int64")
        self.assertEqual(metrics["Node Control/Rebirth"]["value"], False)
        self.assertNotIn("alias", metrics["Node Control/Rebirth"])
        self.assertEqual(metrics["Model/Name"]["value"], self.model_name)
        self.assertEqual(metrics["Server/State"]["value"], "SERVING")
        self.publish("cam-a", 1, part_id=4711)
        self.publish("cam-b", 1)
        wait_for(lambda: len(self.ddata_ids()) == 2, 20, "two DDATA")
        dbirths = dict(self.host.of_type("DBIRTH"))
        self.assertEqual(set(dbirths), {f"spBv1.0/{GROUP}/DBIRTH/{NODE}/cam-a",
                                        f"spBv1.0/{GROUP}/DBIRTH/{NODE}/cam-b"})
        for payload in dbirths.values():
            self.assertEqual(set(metrics_by_name(payload)), DEVICE_METRICS)
        aliases = [m["alias"] for p in dbirths.values() for m in p["metrics"]]
        aliases += [m["alias"] for m in nbirth["metrics"] if "alias" in m]
        self.assertEqual(len(aliases), len(set(aliases)), "aliases unique across the node")
        names = {m["alias"]: m["name"] for p in dbirths.values() for m in p["metrics"]}
        topic, ddata = self.host.of_type("DDATA")[0]
        self.assertTrue(topic.endswith("/DDATA/box-7/cam-a"))
        values = {names[m["alias"]]: m for m in ddata["metrics"]}
        self.assertNotIn("name", ddata["metrics"][0], "DDATA by alias only")
        self.assertEqual(values["Result/Class"]["value"], "Bag")
        self.assertAlmostEqual(values["Result/Score"]["value"], 0.75)
        self.assertEqual(values["Result/Part ID"]["value"], 4711)
        self.assertEqual(values["Result/Message ID"]["value"], "cam-a-boot1-1")
        captured = datetime.datetime(2026, 12, 7, 6, 0, 0, 250000, tzinfo=datetime.timezone.utc)
        self.assertEqual(values["Result/Class"]["timestamp"], int(captured.timestamp() * 1000))
        self.assertFalse(values["Result/Class"].get("isHistorical", False))
        self.check_sessions()

    def test_600_frames_none_lost_across_a_plant_broker_restart(self) -> None:
        """A real camera plays 600 frames of a video through matid-server; the
        plant broker is stopped after 150 DDATA and started again 3 s later."""
        self.start_node()
        self.wait_births(1)
        results = Collector(self.local.port, client_id="result-watcher")
        self.addCleanup(results.close)
        video = os.path.join(self.work, "line.avi")
        make_conveyor_video(video, 600, fps=100)
        camera = subprocess.Popen(
            [os.path.join(BUILD, "bin", "matid-camera"), f"--source={video}",
             "--camera_id=cam-a", f"--server=127.0.0.1:{self.server_port}",
             f"--mqtt_port={self.local.port}", "--metrics_port=-1", "--max_pending=1000",
             "--pace_fps=100"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: len(self.ddata_ids()) >= 150, 60, "DDATA before the restart")
            self.plant.stop()
            time.sleep(3)  # results go to the spool meanwhile
            self.plant.start()
            _, errors = camera.communicate(timeout=120)
            self.assertEqual(camera.returncode, 0, errors)
        finally:
            if camera.poll() is None:
                camera.kill()
        wait_for(lambda: len(results.seen()) >= 600, 30, "600 results at the local broker")
        sent = set(results.seen())
        self.assertEqual(len(sent), 600)
        wait_for(lambda: set(self.ddata_ids()) >= sent, 60,
                 "every result as DDATA after the restart")
        self.assertEqual(set(self.ddata_ids()), sent)
        births = self.host.of_type("NBIRTH")
        self.assertEqual(len(births), 2, "one NBIRTH per connection")
        bd_seqs = [metrics_by_name(p)["bdSeq"]["value"] for _, p in births]
        self.assertGreater(bd_seqs[1], bd_seqs[0], "a new CONNECT, a new bdSeq")
        self.check_sessions()
        # Results stored while the plant broker was away come flagged historical.
        historical = [p for _, p in self.host.of_type("DDATA")
                      if p["metrics"][0].get("isHistorical")]
        self.assertGreater(len(historical), 0)
        wait_for(lambda: scrape(int(self.node.match.group(1)))
                 .get("matid_sparkplug_backlog_messages") == 0, 10, "an empty spool")

    def test_ndeath_is_the_will_when_killed(self) -> None:
        self.start_node()
        _, nbirth = self.wait_births(1)[0]
        self.node.stop(signal.SIGKILL)
        self.node = None
        topic, ndeath = wait_for(lambda: self.host.of_type("NDEATH") and
                                 self.host.of_type("NDEATH")[0], 30, "NDEATH")
        self.assertEqual(topic, f"spBv1.0/{GROUP}/NDEATH/{NODE}")
        self.assertEqual(metrics_by_name(ndeath)["bdSeq"]["value"],
                         metrics_by_name(nbirth)["bdSeq"]["value"])
        self.assertNotIn("seq", ndeath)

    def test_rebirth_on_ncmd(self) -> None:
        self.start_node()
        self.wait_births(1)
        self.publish("cam-a", 1)
        wait_for(lambda: self.ddata_ids(), 20, "a DDATA")
        self.host.command({"timestamp": int(time.time() * 1000), "metrics": [
            {"name": "Node Control/Rebirth", "type": "Boolean", "value": True}]})
        births = self.wait_births(2)
        first, second = (metrics_by_name(p)["bdSeq"]["value"] for _, p in births)
        self.assertEqual(first, second, "a rebirth keeps the bdSeq")
        wait_for(lambda: len(self.host.of_type("DBIRTH")) == 2, 20, "the camera born again")
        self.publish("cam-a", 2)
        wait_for(lambda: len(self.ddata_ids()) == 2, 20, "DDATA after the rebirth")
        self.check_sessions()

    def test_primary_host_state_gates_births(self) -> None:
        self.start_node("--primary_host_id=scada")
        state_topic = "spBv1.0/STATE/scada"
        now = int(time.time() * 1000)

        def state(online: bool, timestamp: int) -> None:
            self.host.client.publish(state_topic, json.dumps(
                {"online": online, "timestamp": timestamp}), qos=1, retain=True)

        for seq in range(10):
            self.publish("cam-a", seq)
        time.sleep(1.5)
        self.assertEqual(self.host.of_type("NBIRTH"), [], "no birth before the host is online")
        state(True, now)
        _, first = self.wait_births(1)[0]
        wait_for(lambda: len(self.ddata_ids()) == 10, 20, "the held results")
        self.assertTrue(all(p["metrics"][0].get("isHistorical")
                            for _, p in self.host.of_type("DDATA")))
        state(False, now + 1000)
        _, ndeath = wait_for(lambda: self.host.of_type("NDEATH") and
                             self.host.of_type("NDEATH")[0], 20, "NDEATH when the host left")
        self.assertEqual(metrics_by_name(ndeath)["bdSeq"]["value"],
                         metrics_by_name(first)["bdSeq"]["value"])
        for seq in range(10, 20):
            self.publish("cam-a", seq)
        time.sleep(1.5)
        self.assertEqual(len(self.ddata_ids()), 10, "results held while the host is offline")
        state(True, now + 2000)
        _, second = self.wait_births(2)[1]
        self.assertEqual(metrics_by_name(second)["bdSeq"]["value"],
                         metrics_by_name(first)["bdSeq"]["value"] + 1, "a new connection")
        wait_for(lambda: len(self.ddata_ids()) == 20, 20, "the results held meanwhile")
        self.assertEqual(set(self.ddata_ids()), {f"cam-a-boot1-{seq}" for seq in range(20)})
        state(False, now + 500)  # older than the last STATE: ignored
        self.publish("cam-a", 20)
        wait_for(lambda: len(self.ddata_ids()) == 21, 20, "data after a stale STATE")
        self.assertEqual(len(self.host.of_type("NDEATH")), 1)
        self.check_sessions()

    def test_ddeath_for_a_silent_camera(self) -> None:
        self.start_node("--device_timeout_seconds=2")
        self.wait_births(1)
        self.publish("cam-quiet", 1)
        topic, ddeath = wait_for(lambda: self.host.of_type("DDEATH") and
                                 self.host.of_type("DDEATH")[0], 20, "DDEATH")
        self.assertEqual(topic, f"spBv1.0/{GROUP}/DDEATH/{NODE}/cam-quiet")
        self.publish("cam-quiet", 2)
        wait_for(lambda: len(self.host.of_type("DBIRTH")) == 2, 20, "a new DBIRTH")
        wait_for(lambda: len(self.ddata_ids()) == 2, 20, "its DDATA")
        self.check_sessions()

    def test_malformed_results_are_dead_letters(self) -> None:
        self.start_node()
        self.wait_births(1)
        self.camera.client.publish("matid/cam-a/results", b"{not json", qos=1)
        self.publish("cam-a", 1)
        wait_for(lambda: self.ddata_ids(), 20, "the good result")
        metrics = wait_for(lambda: (m := scrape(int(self.node.match.group(1)))) and
                           m.get("matid_sparkplug_dead_letters_total") == 1 and m, 10,
                           "the dead letter counted")
        self.assertEqual(metrics["matid_sparkplug_results_received_total"], 1)

    def test_bad_flags_are_named(self) -> None:
        binary = os.path.join(BUILD, "bin", "matid-sparkplug")
        cases = [([], "--plant_host"),
                 (["--plant_host=127.0.0.1"], "--sparkplug_node"),
                 (["--plant_host=127.0.0.1", "--sparkplug_node=a/b"], "--sparkplug_node"),
                 (["--plant_host=127.0.0.1", "--sparkplug_node=n", "--max_cameras=0"],
                  "--max_cameras"),
                 (["--plant_host=127.0.0.1", "--sparkplug_node=n", "--primary_host_id=a+b"],
                  "--primary_host_id"),
                 (["--plant_host=127.0.0.1", "--sparkplug_node=n",
                   "--plant_password_file=/nonexistent"], "--plant_password_file")]
        for args, flag in cases:
            done = subprocess.run([binary, *args, "--metrics_port=-1"], capture_output=True,
                                  text=True, timeout=30)
            self.assertNotEqual(done.returncode, 0, args)
            self.assertIn(flag, done.stderr, args)


class SparkplugTlsTest(unittest.TestCase):
    """TLS and username/password to the plant server."""

    def test_tls_with_password(self) -> None:
        codec = TahuCodec()
        work = tempfile.mkdtemp(prefix="matid-sparkplug-tls-")
        tls = make_certificates(work)
        plant = Mosquitto(work, "plant", tls=tls, client_certificates=False,
                          passwords={"edge": "s3cret", "host": "h0st"})
        local = Mosquitto(work, "local")
        watcher = mqtt.Client(client_id="watcher")
        watcher.tls_set(ca_certs=tls["ca.crt"])
        watcher.username_pw_set("host", "h0st")
        births = []
        watcher.on_connect = lambda c, u, f, rc: c.subscribe("spBv1.0/#", qos=1)
        watcher.on_message = lambda c, u, m: births.append(m.topic)
        watcher.connect("localhost", plant.port)
        watcher.loop_start()
        nodes = []
        try:
            self.assertTrue(wait_connected(watcher, 30))
            for password, expect_birth in (("wrong", False), ("s3cret", True)):
                with open(os.path.join(work, "password"), "w") as f:
                    f.write(password + "\n")
                node = Process(
                    [os.path.join(BUILD, "bin", "matid-sparkplug"), f"--sparkplug_group={GROUP}",
                     f"--sparkplug_node=tls-{password}", "--plant_host=localhost",
                     f"--plant_port={plant.port}", f"--plant_ca={tls['ca.crt']}",
                     "--plant_username=edge", f"--plant_password_file={work}/password",
                     f"--local_port={local.port}", "--server=", "--metrics_port=-1",
                     f"--spool_path={work}/spool-{password}.db"],
                    "metrics_port", os.path.join(work, f"node-{password}.log"))
                nodes.append(node)
                topic = f"spBv1.0/{GROUP}/NBIRTH/tls-{password}"
                if expect_birth:
                    wait_for(lambda: topic in births, 30, "NBIRTH over TLS with a password")
                else:
                    wait_for(lambda: "not connected" in node.output(), 30, "a refusal logged")
                    self.assertNotIn(topic, births)
        finally:
            for node in nodes:
                node.stop(signal.SIGKILL)
            watcher.loop_stop()
            plant.stop()
            local.stop()
            codec.close()


if __name__ == "__main__":
    unittest.main()
