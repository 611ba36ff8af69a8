#!/usr/bin/python3
"""Beyond one server: three matid-servers on loopback, clients given all
three in one target (ipv4:a,b,c) with round_robin.
  - matid-classify's calls spread over the three: each server's request
    count (its /metrics) within ±30% of the mean;
  - the camera streams a video while one server is SIGKILLed: no frame is
    lost (every frame has a result at the broker; the camera's stream moves
    to a server that is up);
  - a DNS name (dns:///matid-pool:P) that gains an address while the camera
    runs: the server started there receives frames within a few of the
    servers' connection ages (plus the client's 5 s between resolutions). The
    name lives in a private /etc/hosts, bind-mounted for the camera alone in
    its own mount namespace (unshare, root); the servers listen on
    127.0.0.1, .2 and .3.
"""
import os
import signal
import subprocess
import sys
import tempfile
import shutil
import socket
import time
import unittest
import urllib.request
from typing import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "bin")
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))
from tests.edge_harness import Collector, Mosquitto, Process, make_conveyor_video, wait_for  # noqa: E402


def requests_served(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("matid_requests_total{"))


class ScaleOutTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="matid-scale-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.servers = []
        for i in range(3):
            server = Process([os.path.join(BIN, "matid-server"), f"--model_dir={MODEL}",
                              "--host=127.0.0.1", "--port=0", "--metrics_host=127.0.0.1",
                              "--metrics_port=0", "--threads=1"],
                             r"serving grpc_port=(\d+) metrics_port=(\d+)",
                             os.path.join(self.tmp, f"server{i}.log"))
            self.addCleanup(server.stop)
            self.servers.append(server)
        # No maximum connection age here: a server whose connection is being
        # replaced misses the picks of that moment, which would blur the
        # spread measured below (rotation is NewServerTest's subject).
        self.target = "ipv4:" + ",".join(f"127.0.0.1:{s.match.group(1)}" for s in self.servers)

    def test_calls_spread_over_every_server(self) -> None:
        images = os.path.join(self.tmp, "images")
        subprocess.run([sys.executable, "-m", "model_export.fashion_mnist",
                        "--split", "test", "--count", "300", "--out", images],
                       cwd=ROOT, check=True, capture_output=True)
        done = subprocess.run([os.path.join(BIN, "matid-classify"), f"--server={self.target}",
                               "--format=csv", "--concurrency=6", images],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        counts = [requests_served(int(s.match.group(2))) for s in self.servers]
        self.assertEqual(sum(counts), 300, counts)
        mean = sum(counts) / 3
        for count in counts:
            self.assertLessEqual(abs(count - mean), 0.3 * mean, counts)
        print(f"scale-out: requests per server {counts}", flush=True)

    def test_camera_loses_no_frame_when_a_server_dies(self) -> None:
        frames = 200
        video = os.path.join(self.tmp, "line.avi")
        make_conveyor_video(video, frames, fps=20)
        broker = Mosquitto(self.tmp, "local")
        self.addCleanup(broker.stop)
        collector = Collector(broker.port)
        self.addCleanup(collector.close)
        camera = subprocess.Popen(
            [os.path.join(BIN, "matid-camera"), f"--source={video}", "--camera_id=scale-cam",
             f"--server={self.target}", f"--mqtt_port={broker.port}", "--metrics_port=-1",
             "--pace_fps=40", "--max_pending=1000"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(stop_process, camera)
        wait_for(lambda: len(collector.seen()) >= 40, 60, "results flowing")
        # Kill the server that has the camera's stream (the one with most requests).
        busiest = max(self.servers, key=lambda s: requests_served(int(s.match.group(2))))
        busiest.process.send_signal(signal.SIGKILL)
        busiest.process.wait(timeout=10)
        output, _ = camera.communicate(timeout=120)
        self.assertEqual(camera.returncode, 0, output)
        wait_for(lambda: len({p["frame_seq"] for p in collector.payloads}) >= frames, 30,
                 "every result at the broker")
        self.assertEqual(sorted({p["frame_seq"] for p in collector.payloads}), list(range(frames)))
        self.assertRegex(output, rf"{frames} frames captured, {frames} classified, 0 dropped")
        survivors = [requests_served(int(s.match.group(2))) for s in self.servers if s is not busiest]
        self.assertGreater(sum(survivors), 0, "no frame went to the servers left")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def port_free_on(port: int, hosts: Sequence[str]) -> bool:
    for host in hosts:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"),
                     "needs root and unshare for a private /etc/hosts")
class NewServerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="matid-scale-dns-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def server(self, host: str, port: int, name: str) -> Process:
        server = Process([os.path.join(BIN, "matid-server"), f"--model_dir={MODEL}",
                          f"--host={host}", f"--port={port}", "--metrics_host=127.0.0.1",
                          "--metrics_port=0", "--threads=1", "--max_connection_age_ms=1500",
                          "--max_connection_age_grace_ms=500"],
                         r"serving grpc_port=(\d+) metrics_port=(\d+)",
                         os.path.join(self.tmp, f"{name}.log"))
        self.addCleanup(server.stop)
        return server

    def test_server_added_to_the_name_gets_traffic_within_a_few_connection_ages(self) -> None:
        hosts = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
        port = next(p for p in range(47000, 48000) if port_free_on(p, hosts))
        first = [self.server(h, port, f"server{i}") for i, h in enumerate(hosts[:2])]
        hosts_file = os.path.join(self.tmp, "hosts")
        with open(hosts_file, "w") as f:
            f.write("127.0.0.1 localhost\n127.0.0.1 matid-pool\n127.0.0.2 matid-pool\n")
        video = os.path.join(self.tmp, "line.avi")
        frames = 2400  # 120 s: the camera outlives the wait below
        make_conveyor_video(video, frames, fps=20)
        broker = Mosquitto(self.tmp, "local")
        self.addCleanup(broker.stop)
        camera_log = open(os.path.join(self.tmp, "camera.log"), "w")
        self.addCleanup(camera_log.close)
        camera_args = [os.path.join(BIN, "matid-camera"), f"--source={video}", "--camera_id=dns-cam",
                       f"--server=dns:///matid-pool:{port}", f"--mqtt_port={broker.port}",
                       "--metrics_port=-1", "--pace_fps=20", "--max_pending=1000"]
        camera = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount --bind "$0" /etc/hosts && exec "$@"', hosts_file, *camera_args],
            stdout=camera_log, stderr=subprocess.STDOUT, env=dict(os.environ, GRPC_DNS_RESOLVER="native"))
        self.addCleanup(stop_process, camera)
        wait_for(lambda: sum(requests_served(int(s.match.group(2))) for s in first) >= 20, 30,
                 "frames at the first two servers")

        late = self.server(hosts[2], port, "server-late")
        with open(hosts_file, "a") as f:  # in place: the bind mount sees the same file
            f.write("127.0.0.3 matid-pool\n")
        added = time.monotonic()
        # The camera's stream moves on every 2 s or so (connection age +
        # grace + reconnect), the name is resolved again at most every 5 s,
        # and round_robin picks among the servers up at random, so the old
        # ones may win a few rounds in a row: 90 s is some 40 rounds.
        wait_for(lambda: requests_served(int(late.match.group(2))) > 0, 90,
                 "frames at the server added to the name")
        print(f"scale-out: the added server got its first frame {time.monotonic() - added:.1f} s "
              "after it joined the name", flush=True)
        self.assertIsNone(camera.poll(), "the camera should still be streaming")


if __name__ == "__main__":
    unittest.main(verbosity=2)
