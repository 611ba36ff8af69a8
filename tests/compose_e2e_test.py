#!/usr/bin/python3
"""The whole edge box in real containers, from docker-compose.yml.

Builds the images (scripts/build-images.sh: quick when cached), starts
dockerd if it is not running (and stops it afterwards), then brings the box
up with Debian's docker-compose and the override tests/compose/e2e.yml: the
camera reads a video file, the model comes from a host folder, the bridge
forwards over mutual TLS to "cloud", a mosquitto container with test
certificates standing in for AWS IoT Core. It checks:
  - every service becomes healthy;
  - Prometheus (the container) reports up == 1 for server, camera, bridge;
  - restarting the server container mid-stream loses no frame;
  - SIGKILL of the bridge container while the cloud is paused (a backlog in
    the spool) loses no message: the spool is on a volume;
  - N frames give N distinct results at the cloud stand-in (one message_id
    per frame; a resend after the SIGKILL carries the same id);
  - every Grafana panel's query returns data from that Prometheus;
  - `docker-compose down` drains the server, which exits 0 in its grace.
A second test adds deploy/compose/repository.yml: the server serves a
versioned repository from a host folder (writing its version_policy.json
there as user 10001), matid-admin in the server's container shadows,
promotes and rolls back, and both model events reach the cloud stand-in
through the box's broker and the bridge.
All traffic stays on the compose network the test creates and on loopback.
MATID_SKIP_CONTAINERS=1 skips it (exit 77, which ctest reports as skipped).
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))
from model_export import repository  # noqa: E402
from tests.docker_engine import COMPOSE, DOCKER, ENV, DockerEngine, docker  # noqa: E402
from tests.edge_harness import (Collector, free_port, make_certificates,  # noqa: E402
                          make_conveyor_video, wait_for)

FRAMES = 600
FPS = 10  # 60 s of video: room for a server restart and a bridge kill mid-stream
SERVICES = ("mosquitto", "server", "camera", "bridge", "prometheus", "cloud")


def metric(port: int, name: str) -> float:
    """Sum of a metric's samples on a /metrics page (0 when absent)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def prometheus_query(port: int, expression: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    answer = json.load(urllib.request.urlopen(url, timeout=5))
    return answer["data"]["result"] if answer["status"] == "success" else []


def has_finite_value(result: list) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


class ComposeBoxTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="matid-compose-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        os.chmod(self.tmp, 0o755)  # the containers' users read the folders below
        self.engine = DockerEngine(self.tmp)
        self.engine.__enter__()
        self.addCleanup(self.engine.__exit__, None, None, None)
        built = subprocess.run(["bash", os.path.join(ROOT, "scripts", "build-images.sh")],
                               capture_output=True, text=True, timeout=3600, env=ENV)
        self.assertEqual(built.returncode, 0, built.stdout + built.stderr)
        print(built.stdout, end="", flush=True)

        models = os.path.join(self.tmp, "models")
        shutil.copytree(MODEL, os.path.join(models, "test"))
        media = os.path.join(self.tmp, "media")
        os.makedirs(media)
        make_conveyor_video(os.path.join(media, "conveyor.avi"), FRAMES, fps=FPS)
        certs_work = os.path.join(self.tmp, "certs-work")
        os.makedirs(certs_work)
        paths = make_certificates(certs_work, server_names=("localhost", "cloud"))
        self.certs = os.path.join(self.tmp, "certs")
        os.makedirs(self.certs)
        for source, name in (("ca.crt", "AmazonRootCA1.pem"), ("client.crt", "thing.crt"),
                             ("client.key", "thing.key"), ("server.crt", "server.crt"),
                             ("server.key", "server.key")):
            shutil.copy(paths[source], os.path.join(self.certs, name))
        self.tls = {"ca.crt": paths["ca.crt"], "client.crt": paths["client.crt"],
                    "client.key": paths["client.key"]}
        with open(os.path.join(self.tmp, "cloud.conf"), "w") as f:
            f.write("listener 8883 0.0.0.0\nallow_anonymous true\nrequire_certificate true\n"
                    "cafile /certs/AmazonRootCA1.pem\ncertfile /certs/server.crt\n"
                    "keyfile /certs/server.key\nmax_queued_messages 100000\n")
        for root, dirs, files in os.walk(self.tmp):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)

        self.ports = {name: free_port() for name in
                      ("grpc", "server_metrics", "camera_metrics", "bridge_metrics", "prometheus", "cloud")}
        self.env = dict(ENV, MATID_MODEL_DIR=models, MATID_MODEL="test", MATID_MEDIA_DIR=media,
                        MATID_CERTS_DIR=self.certs, MATID_E2E_DIR=self.tmp, MATID_BOX="e2e-box",
                        MATID_E2E_FPS=str(FPS), MATID_E2E_INSPECTION_THRESHOLD="0.99",
                        MATID_GRPC_PORT=str(self.ports["grpc"]),
                        MATID_SERVER_METRICS_PORT=str(self.ports["server_metrics"]),
                        MATID_CAMERA_METRICS_PORT=str(self.ports["camera_metrics"]),
                        MATID_BRIDGE_METRICS_PORT=str(self.ports["bridge_metrics"]),
                        MATID_PROMETHEUS_PORT=str(self.ports["prometheus"]),
                        MATID_E2E_CLOUD_PORT=str(self.ports["cloud"]))
        self.project = f"matide2e{os.getpid()}"
        self.compose_files = [os.path.join(ROOT, "docker-compose.yml"),
                              os.path.join(HERE, "compose", "e2e.yml")]
        self.addCleanup(self.compose, "down", "-v", "--remove-orphans", "-t", "5", check=False)

    def compose_command(self, *args: str) -> list[str]:
        files = [arg for path in self.compose_files for arg in ("-f", path)]
        return [COMPOSE, "-p", self.project, *files, *args]

    def compose(self, *args: str, check: bool = True, timeout: float = 180) -> str:
        command = self.compose_command(*args)
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def health(self, service: str) -> str:
        cid = self.container(service)
        if not cid:
            return "absent"
        return docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                      cid).strip()

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, check=False)

    def cloud_consumer(self, client_id: str, topic: str) -> Collector:
        """Starts the cloud stand-in and subscribes to `topic` on it, before
        anything else is up, so that no message reaches it unheard."""
        self.compose("up", "-d", "--no-build", "cloud")
        wait_for(lambda: self.health("cloud") == "healthy", 60, "the cloud stand-in to be healthy",
                 interval=0.5)
        consumer = Collector(self.ports["cloud"], tls=self.tls, client_id=client_id, topic=topic)
        self.addCleanup(consumer.close)  # subscribed: the broker has acknowledged it
        return consumer

    def test_box_runs_survives_restarts_and_drains(self) -> None:
        started = time.monotonic()
        collector = self.cloud_consumer("e2e-cloud-consumer", "matid/+/results")

        self.compose("up", "-d", "--no-build", timeout=300)
        try:
            wait_for(lambda: all(self.health(s) == "healthy" for s in SERVICES), 120,
                     "every service to be healthy", interval=1)
        except AssertionError:
            raise AssertionError("not healthy: " + ", ".join(
                f"{s}={self.health(s)}" for s in SERVICES) + "\n" + self.logs("camera") + self.logs("bridge"))
        healthy_after = time.monotonic() - started
        print(f"compose: every service healthy {healthy_after:.1f} s after up", flush=True)

        # Prometheus in its container scrapes all three programs.
        def all_up():
            result = prometheus_query(self.ports["prometheus"], 'up{job=~"matid-.*"}')
            return {r["metric"]["job"]: r["value"][1] for r in result}
        up = wait_for(lambda: (lambda u: u if len(u) == 3 and set(u.values()) == {"1"} else None)(all_up()),
                      40, "Prometheus to see server, camera and bridge up", interval=1)
        self.assertEqual(up, {"matid-server": "1", "matid-camera": "1", "matid-bridge": "1"})

        def distinct_seqs() -> int:
            with collector.lock:
                return len({p["frame_seq"] for p in collector.payloads})

        # The server restarts mid-stream: the camera keeps its frames and resends.
        at_start = distinct_seqs()
        self.assertLess(at_start, FRAMES // 2, "the video is nearly over before the faults")
        wait_for(lambda: distinct_seqs() >= at_start + 20, 60, "results flowing", interval=0.2)
        self.compose("restart", "-t", "20", "server", timeout=120)
        print(f"compose: server restarted at {distinct_seqs()} results", flush=True)

        # The bridge is SIGKILLed while results wait in its spool (the cloud
        # paused); after it comes back, the spool volume still holds them.
        restarted_at = distinct_seqs()
        wait_for(lambda: distinct_seqs() >= restarted_at + 60, 120, "results after the restart",
                 interval=0.2)
        self.compose("pause", "cloud")
        paused = True
        try:
            backlog = wait_for(lambda: metric(self.ports["bridge_metrics"], "matid_bridge_backlog_messages") >= 20
                               and metric(self.ports["bridge_metrics"], "matid_bridge_backlog_messages"),
                               60, "a backlog in the bridge's spool", interval=0.2)
            self.compose("kill", "-s", "SIGKILL", "bridge")
            print(f"compose: bridge SIGKILLed with {backlog:.0f} messages in its spool", flush=True)
            self.compose("unpause", "cloud")
            paused = False
        finally:
            if paused:
                self.compose("unpause", "cloud", check=False)
        self.compose("start", "bridge")

        try:
            wait_for(lambda: distinct_seqs() >= FRAMES, 180, f"all {FRAMES} results at the cloud",
                     interval=0.5)
        except AssertionError:
            raise AssertionError(f"{distinct_seqs()} of {FRAMES} results at the cloud\n"
                                 + self.logs("camera") + self.logs("bridge"))
        time.sleep(2)  # an absence check (slower machine: weaker, never failing): extras show now
        with collector.lock:
            payloads = list(collector.payloads)
        ids = [p["message_id"] for p in payloads]
        self.assertEqual(sorted({p["frame_seq"] for p in payloads}), list(range(FRAMES)))
        self.assertEqual(len(set(ids)), FRAMES, "one message id per frame")
        by_id = {}
        for p in payloads:  # a resend is the same message, not a new one
            self.assertEqual(by_id.setdefault(p["message_id"], p["frame_seq"]), p["frame_seq"])
        print(f"compose: {FRAMES} frames -> {len(set(ids))} distinct results at the cloud "
              f"({len(ids) - len(set(ids))} resends after the SIGKILL)", flush=True)
        # The camera has finished the video and exited 0; its counters, as
        # Prometheus last scraped them, and its summary line.
        camera_log = self.logs("camera")
        self.assertRegex(camera_log, rf"finished: {FRAMES} frames captured, {FRAMES} classified, "
                                     r"0 dropped \(server behind\), 0 refused")

        def last(name: str) -> float:
            result = prometheus_query(self.ports["prometheus"], f"last_over_time({name}[10m])")
            self.assertTrue(result, name)
            return float(result[0]["value"][1])
        self.assertGreaterEqual(last("matid_camera_stream_reconnects_total"), 1)
        # The inspection volume is writable by the camera's non-root user.
        self.assertGreater(last("matid_camera_needs_inspection_total"), 0)
        self.assertEqual(last("matid_camera_inspection_write_failures_total"), 0)
        inspected = self.compose("run", "--rm", "--no-deps", "--entrypoint", "ls", "camera", "/inspect")
        self.assertIn(".jpg", inspected)

        self.check_dashboard_panels()

        # docker-compose down: the server drains and exits 0 within its grace.
        server_id = self.container("server")
        events = subprocess.Popen([DOCKER, "events", "--filter", f"container={server_id}",
                                   "--filter", "event=die", "--format", "{{json .}}"],
                                  stdout=subprocess.PIPE, text=True, env=ENV)
        server_log = subprocess.Popen(self.compose_command("logs", "-f", "--no-color", "--tail",
                                                           "20", "server"),
                                      cwd=ROOT, env=self.env, stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        down_started = time.monotonic()
        self.compose("down", "-v", timeout=120)
        down_seconds = time.monotonic() - down_started
        try:
            event = json.loads(events.stdout.readline())
        finally:
            events.kill()
            events.wait()
        server_output = server_log.communicate(timeout=30)[0]
        self.assertEqual(event["Actor"]["Attributes"]["exitCode"], "0", server_output)
        self.assertRegex(server_output, r"received, draining")
        self.assertIn("matid-server: stopped", server_output)
        self.assertLess(down_seconds, 20 + 20, "down took longer than the stop grace periods")
        print(f"compose: down in {down_seconds:.1f} s, server exit code 0 after draining", flush=True)

    def test_repository_override_promotes_and_rolls_back_with_events_at_the_cloud(self) -> None:
        repo = os.path.join(self.tmp, "repository")
        for _ in range(2):  # versions 1 and 2: same inputs and labels, so 2 may shadow 1
            repository.publish(MODEL, repo, "test")
        policy_path = os.path.join(repo, "test", "version_policy.json")
        with open(policy_path, "w") as f:
            json.dump({"policy": "specific", "versions": [1]}, f)
        for root, dirs, files in os.walk(repo):  # the server runs as 10001 and writes the policy
            os.chown(root, 10001, 10001)
            for name in dirs + files:
                os.chown(os.path.join(root, name), 10001, 10001)
        self.compose_files.append(os.path.join(ROOT, "deploy", "compose", "repository.yml"))
        self.env.update(MATID_REPOSITORY_DIR=repo, MATID_REPOSITORY_POLL_SECONDS="1",
                        MATID_THING_NAME="e2e-box")

        events = self.cloud_consumer("e2e-events", "matid/+/events")
        box = ("mosquitto", "server", "bridge")
        self.compose("up", "-d", "--no-build", *box, timeout=300)
        try:
            wait_for(lambda: all(self.health(s) == "healthy" for s in box), 120,
                     "mosquitto, server and bridge to be healthy", interval=1)
        except AssertionError:
            raise AssertionError(self.logs("server") + self.logs("bridge"))

        def admin(*args: str) -> str:
            return self.compose("exec", "-T", "server", "matid-admin", *args)

        def received(kind: str) -> dict:
            def find() -> dict:
                with events.lock:
                    return next((e for e in events.payloads if e["type"] == kind), None)
            try:
                return wait_for(find, 60, f"the {kind} event at the cloud", interval=0.5)
            except AssertionError:
                raise AssertionError(self.logs("server") + self.logs("bridge"))

        self.assertRegex(admin("list"), r"test\s+1\s+AVAILABLE\s+yes")
        admin("shadow", "test", "2", "1")
        admin("promote", "test")
        promotion = received("promotion")
        self.assertEqual((promotion["box_id"], promotion["model"], promotion["from_version"],
                          promotion["to_version"], promotion["trigger"]),
                         ("e2e-box", "test", 1, 2, "admin"))
        with open(policy_path) as f:
            policy = json.load(f)
        self.assertEqual((policy["versions"], policy["rollback"]["version"]), ([2], 1))
        listed = admin("list")
        self.assertRegex(listed, r"test\s+1\s+AVAILABLE\s+rollback")
        self.assertRegex(listed, r"test\s+2\s+AVAILABLE\s+yes")
        admin("rollback", "test")
        rollback = received("rollback")
        self.assertEqual((rollback["from_version"], rollback["to_version"]), (2, 1))
        with open(policy_path) as f:
            self.assertEqual(json.load(f)["versions"], [1])
        print("compose (repository): promotion 1 -> 2 and rollback 2 -> 1 by matid-admin in the "
              "server container; both events at the cloud stand-in", flush=True)

    def check_dashboard_panels(self) -> None:
        """Every query of deploy/grafana's dashboard returns data from the
        box's Prometheus, after some plant-software traffic (matid-classify)."""
        images = os.path.join(self.tmp, "images")
        subprocess.run([sys.executable, "-m", "model_export.fashion_mnist",
                        "--split", "test", "--count", "20", "--out", images],
                       cwd=ROOT, check=True, capture_output=True)
        with open(os.path.join(ROOT, "deploy", "grafana", "matid-edge-box.json")) as f:
            dashboard = json.load(f)
        queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
        self.assertGreaterEqual(len(queries), 10)
        missing = queries
        deadline = time.monotonic() + 90
        while missing and time.monotonic() < deadline:
            subprocess.run([os.path.join(BUILD, "bin", "matid-classify"),
                            f"--server=127.0.0.1:{self.ports['grpc']}", "--format=csv", images],
                           check=True, capture_output=True, timeout=60)
            missing = [q for q in queries
                       if not has_finite_value(prometheus_query(self.ports["prometheus"], q))]
            if missing:
                time.sleep(2)
        self.assertEqual(missing, [], "dashboard queries without data")
        box = prometheus_query(self.ports["prometheus"], 'up{job="matid-server"}')
        print(f"compose: all {len(queries)} dashboard queries return data", flush=True)
        # external_labels are for federation and remote write, not local queries;
        # the config Prometheus runs with shows the expanded box name.
        config = json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{self.ports['prometheus']}/api/v1/status/config", timeout=5))
        self.assertIn("box: e2e-box", config["data"]["yaml"])
        self.assertTrue(box)


if __name__ == "__main__":
    if os.environ.get("MATID_SKIP_CONTAINERS") == "1":
        banner = "#" * 72
        print(f"{banner}\n# SKIPPED: the container end-to-end test (MATID_SKIP_CONTAINERS=1).\n"
              f"# No image was built or run: docker-compose is NOT tested by this run.\n{banner}",
              flush=True)
        sys.exit(77)
    unittest.main(verbosity=2)
