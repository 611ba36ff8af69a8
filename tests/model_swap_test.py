#!/usr/bin/python3
"""Model lifecycle against the real matid-server binary and LibTorch
(python3-grpcio clients and matid-bench, loopback only, every loop bounded
in count and time).

The test model is published into a repository with `model_export`'s
publish, served with --model_repository, and swapped by publishing the next
version and sending SIGHUP. Checked:
- 20 swaps under load from Python clients and matid-bench at once: no
  failed request; every response names its version; no client sees an
  older version after a newer one;
- a partial copy, a wrong digest, a model that fails its smoke check and
  one whose forward() throws each end FAILED with the reason (Health,
  metrics), while the serving version keeps answering; removing them
  clears them;
- 50 more swaps: the server's RSS stays within +10% of its value after the
  first swap;
- with --trusted_model_keys, only versions `model_export publish
  --signing_key` signed with a trusted key load: an unsigned one and one
  signed by another key are FAILED saying why, the signed one serves on.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build"))
TEST_MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD_DIR, "test_model"))
sys.path.insert(0, os.path.join(BUILD_DIR, "python"))

import cv2  # noqa: E402
import grpc  # noqa: E402
import numpy as np  # noqa: E402
from model_export import repository  # noqa: E402
from tests.edge_harness import Process, rss_kib, sanitized_build, scrape, wait_for  # noqa: E402
from matid.v1 import matid_pb2, matid_pb2_grpc  # noqa: E402

MODEL = "parts"
PNG = cv2.imencode(".png", np.full((28, 28), 90, np.uint8))[1].tobytes()
AVAILABLE = matid_pb2.ModelVersionStatus.AVAILABLE
# Writes a TorchScript model whose forward() always raises to argv[1].
THROWING_MODEL = """
import sys, torch
class Broken(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this model always throws")
torch.jit.script(Broken()).save(sys.argv[1])
"""
FAILED = matid_pb2.ModelVersionStatus.FAILED


class LoadClient(threading.Thread):
    """Classify in a closed loop until stopped (at most `limit` calls);
    records each answer's status and version."""

    def __init__(self, port: int, limit: int = 200000) -> None:
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = matid_pb2_grpc.ClassifierStub(self.channel)
        self.limit = limit
        self.stopping = threading.Event()
        self.failures: list[str] = []
        self.versions: list[int] = []

    def run(self) -> None:
        request = matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=PNG))
        for _ in range(self.limit):
            if self.stopping.is_set():
                break
            try:
                response = self.stub.Classify(request, timeout=10)
                self.versions.append(int(response.model.version))
            except grpc.RpcError as error:
                self.failures.append(f"{error.code().name}: {error.details()}")

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)
        self.channel.close()


class ModelSwapTest(unittest.TestCase):
    def setUp(self) -> None:
        if not os.path.isdir(TEST_MODEL):
            self.skipTest("the test model is not built")
        self.tmp = tempfile.mkdtemp(prefix="matid-swap-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.repo = os.path.join(self.tmp, "repo")
        self.publish()
        server = Process([os.path.join(BUILD_DIR, "bin", "matid-server"),
                          f"--model_repository={self.repo}", "--host=127.0.0.1", "--port=0",
                          "--metrics_port=0", "--threads=1", "--inference_workers=2",
                          "--lame_duck_ms=0"],
                         r"serving grpc_port=(\d+) metrics_port=(\d+)",
                         os.path.join(self.tmp, "server.log"))
        self.server = server
        self.addCleanup(self.stop_server)
        self.port, self.metrics_port = int(server.match.group(1)), int(server.match.group(2))
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.addCleanup(self.channel.close)
        self.stub = matid_pb2_grpc.ClassifierStub(self.channel)

    def stop_server(self) -> None:
        self.assertEqual(self.server.stop(), 0, self.server.output()[-2000:])

    def publish(self) -> int:
        return repository.publish(TEST_MODEL, self.repo, MODEL)

    def states(self) -> list[tuple[str, int, bool]]:
        health = self.stub.Health(matid_pb2.HealthRequest(), timeout=5)
        return [(m.version, m.state, m.is_default) for m in health.models]

    def swap(self) -> int:
        """Publishes the next version, SIGHUP, waits until it alone serves."""
        version = self.publish()
        self.server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: self.states() == [(str(version), AVAILABLE, True)], 30,
                 f"version {version} to serve alone")
        return version

    def serving_version(self) -> str:
        request = matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=PNG))
        return self.stub.Classify(request, timeout=10).model.version

    def test_swaps_under_load_fail_no_request_and_never_go_back(self) -> None:
        clients = [LoadClient(self.port) for _ in range(3)]
        bench_json = os.path.join(self.tmp, "bench.json")
        bench = subprocess.Popen(
            [os.path.join(BUILD_DIR, "bin", "matid-bench"), f"--server=127.0.0.1:{self.port}",
             "--concurrency=4", "--step_seconds=60", "--warmup_seconds=0",
             "--max_requests=400000", "--synthetic=28x28x1", f"--json={bench_json}",
             "--metrics_port=-1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            for client in clients:
                client.start()
            wait_for(lambda: all(client.versions for client in clients), 30, "the load to run")
            swaps = []
            for _ in range(20):
                swaps.append(self.swap())
                time.sleep(0.1)
            self.assertIsNone(bench.poll(), "matid-bench ended before the last swap")
        finally:
            for client in clients:
                client.stop()
            _, bench_err = bench.communicate(timeout=60)
        self.assertEqual(swaps, list(range(2, 22)))
        for client in clients:
            self.assertEqual(client.failures, [])
            self.assertGreater(len(client.versions), 20)
            self.assertEqual(client.versions, sorted(client.versions), "went back to an older version")
            self.assertEqual(client.versions[-1], 21)
        seen = set().union(*(set(c.versions) for c in clients))
        self.assertGreaterEqual(len(seen), 10, sorted(seen))  # the load ran across the swaps
        with open(bench_json) as f:
            step = json.load(f)["steps"][0]
        self.assertGreater(step["requests"], 100, bench_err)
        self.assertEqual(step["errors"], {}, bench_err)
        samples = scrape(self.metrics_port)
        self.assertEqual(samples[f'matid_model_loads_total{{model="{MODEL}",result="ok",version="21"}}'], 1)
        self.assertEqual(
            samples[f'matid_model_version_state{{model="{MODEL}",state="AVAILABLE",version="21"}}'], 1)
        self.assertNotIn(f'matid_model_version_state{{model="{MODEL}",state="AVAILABLE",version="20"}}',
                         samples)  # released versions leave no series behind

    def test_bad_versions_fail_with_the_reason_while_the_old_one_serves(self) -> None:
        def bad_version(mutate) -> str:
            version = self.publish()
            path = os.path.join(self.repo, MODEL, str(version))
            mutate(path)
            return str(version)

        def drop_model_file(path: str) -> None:
            os.remove(os.path.join(path, "model.pt"))

        def flip_a_byte(path: str) -> None:
            with open(os.path.join(path, "model.pt"), "r+b") as f:
                f.seek(100)
                byte = f.read(1)
                f.seek(100)
                f.write(bytes([byte[0] ^ 0xFF]))

        def throwing_model(path: str) -> None:  # republished: its digests are right
            broken_dir = os.path.join(self.tmp, "broken-model")
            shutil.copytree(path, broken_dir)
            with open(os.path.join(broken_dir, "metadata.json")) as f:
                metadata = json.load(f)
            del metadata["sha256"]
            with open(os.path.join(broken_dir, "metadata.json"), "w") as f:
                json.dump(metadata, f)
            script = os.path.join(self.tmp, "throwing_model.py")  # TorchScript reads the source
            with open(script, "w") as f:
                f.write(THROWING_MODEL)
            subprocess.run([sys.executable, script, os.path.join(broken_dir, "model.pt")],
                           check=True, timeout=120)
            shutil.rmtree(path)
            staged = repository.publish(broken_dir, self.repo, MODEL)
            os.rename(os.path.join(self.repo, MODEL, str(staged)), path)

        def three_labels(path: str) -> None:  # the model outputs 10 scores
            metadata_path = os.path.join(path, "metadata.json")
            with open(metadata_path) as f:
                metadata = json.load(f)
            metadata["labels"] = ["a", "b", "c"]
            with open(metadata_path, "w") as f:
                json.dump(metadata, f)

        expected = {}
        for mutate, says in ((drop_model_file, "model.pt is missing"),
                             (flip_a_byte, "model.pt does not match the sha256"),
                             (three_labels, "expected [1, 3] (one score per label)"),
                             (throwing_model, "this model always throws")):
            version = bad_version(mutate)
            expected[version] = says
            self.server.process.send_signal(signal.SIGHUP)
            wait_for(lambda: any(v == version and s == FAILED for v, s, _ in self.states()), 30,
                     f"version {version} to fail")
            self.assertEqual(self.serving_version(), "1")
        health = self.stub.Health(matid_pb2.HealthRequest(), timeout=5)
        reasons = {m.version: m.reason for m in health.models if m.state == FAILED}
        self.assertEqual(sorted(reasons), sorted(expected))
        for version, says in expected.items():
            self.assertIn(says, reasons[version])
            self.assertIn(f"version {version} FAILED", self.server.output())
        samples = scrape(self.metrics_port)
        for version in expected:
            self.assertEqual(samples[f'matid_model_loads_total{{model="{MODEL}",result="failed",'
                                     f'version="{version}"}}'], 1)
            self.assertEqual(samples[f'matid_model_version_state{{model="{MODEL}",state="FAILED",'
                                     f'version="{version}"}}'], 1)
        # Taken back out of the repository: gone; publish reuses the lowest free
        # number, and that new version 2 loads (its folder is new).
        for version in expected:
            shutil.rmtree(os.path.join(self.repo, MODEL, version))
        self.assertEqual(self.swap(), 2)

    def admin(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([os.path.join(BUILD_DIR, "bin", "matid-admin"),
                               f"--server=127.0.0.1:{self.port}", *args],
                              capture_output=True, text=True, timeout=120)

    def test_matid_admin_lists_reloads_pins_and_explains_refusals(self) -> None:
        listed = self.admin("list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertRegex(listed.stdout, rf"{MODEL}\s+1\s+AVAILABLE\s+yes\s+fp32\s+[0-9a-f]{{12}}")
        self.publish()
        self.assertEqual(self.admin("reload").returncode, 0)
        self.assertEqual(self.serving_version(), "2")
        pinned = self.admin("pin", MODEL, "1")
        self.assertEqual(pinned.returncode, 0, pinned.stderr)
        self.assertEqual(self.serving_version(), "1")
        with open(os.path.join(self.repo, MODEL, "version_policy.json")) as f:
            self.assertEqual(json.load(f), {"policy": "specific", "versions": [1]})
        missing = self.admin("load", MODEL, "9")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("no version folder 9", missing.stderr)
        self.assertEqual(self.admin("pin", MODEL).returncode, 0)  # latest again
        self.assertEqual(self.serving_version(), "2")
        for wrong in (["load", MODEL], ["pin", MODEL, "x"], ["drop"]):
            self.assertEqual(self.admin(*wrong).returncode, 2, wrong)

    def test_memory_stays_flat_over_50_swaps(self) -> None:
        if sanitized_build(BUILD_DIR):
            self.skipTest("an AddressSanitizer build's RSS is its quarantine, not the server's")
        self.swap()
        after_first = rss_kib(self.server.process.pid)
        started = time.monotonic()
        for _ in range(50):
            self.swap()
            self.serving_version()
        after_50 = rss_kib(self.server.process.pid)
        print(f"RSS after the first swap {after_first} KiB, after 50 more {after_50} KiB "
              f"({after_50 / after_first - 1:+.1%}), {time.monotonic() - started:.1f} s")
        self.assertLessEqual(after_50, after_first * 1.10)


def make_signing_key(directory: str, name: str) -> tuple:
    """An Ed25519 key pair made with Debian's openssl, as docs/model-repository.md
    says: (private PEM, public PEM)."""
    private = os.path.join(directory, f"{name}.pem")
    public = os.path.join(directory, f"{name}.pub.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", private], check=True)
    subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True)
    return private, public


class SignedVersionsTest(unittest.TestCase):
    def setUp(self) -> None:
        if not os.path.isdir(TEST_MODEL):
            self.skipTest("the test model is not built")
        self.tmp = tempfile.mkdtemp(prefix="matid-signed-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.repo = os.path.join(self.tmp, "repo")
        self.key, self.public = make_signing_key(self.tmp, "plant")

    def publish(self, key: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "model_export", "publish", "--model_dir", TEST_MODEL,
             "--repository", self.repo, "--name", MODEL] + (["--signing_key", key] if key else []),
            capture_output=True, text=True, timeout=120,
            cwd=os.path.join(os.path.dirname(__file__), ".."))

    def admin(self, port: int, *args: str) -> str:
        done = subprocess.run([os.path.join(BUILD_DIR, "bin", "matid-admin"),
                               f"--server=127.0.0.1:{port}", *args],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout

    def test_only_versions_signed_by_a_trusted_key_load(self) -> None:
        self.assertEqual(self.publish(self.key).returncode, 0)
        version = os.path.join(self.repo, MODEL, "1")
        with open(os.path.join(version, "signature.ed25519"), "rb") as f:
            self.assertEqual(len(f.read()), 64)
        server = Process([os.path.join(BUILD_DIR, "bin", "matid-server"),
                          f"--model_repository={self.repo}", f"--trusted_model_keys={self.public}",
                          "--host=127.0.0.1", "--port=0", "--metrics_port=-1", "--lame_duck_ms=0"],
                         r"serving grpc_port=(\d+)", os.path.join(self.tmp, "server.log"))
        self.addCleanup(server.stop)
        port = int(server.match.group(1))
        self.assertRegex(self.admin(port, "list"), rf"{MODEL}\s+1\s+AVAILABLE\s+yes")

        self.assertEqual(self.publish().returncode, 0)  # 2: unsigned
        other_key, _ = make_signing_key(self.tmp, "someone-else")
        self.assertEqual(self.publish(other_key).returncode, 0)  # 3: another key's
        self.admin(port, "reload")
        listed = self.admin(port, "list")
        self.assertRegex(listed, rf"{MODEL}\s+1\s+AVAILABLE\s+yes")
        self.assertRegex(listed, rf"{MODEL}\s+2\s+FAILED")
        self.assertRegex(listed, rf"{MODEL}\s+3\s+FAILED")
        log = server.output()
        self.assertIn("2/signature.ed25519 is missing: with --trusted_model_keys only signed", log)
        self.assertIn("3/signature.ed25519 is not a signature of its metadata.json by a trusted "
                      "key", log)

    def test_a_bad_key_file_or_signing_key_is_refused_naming_the_flag(self) -> None:
        self.assertEqual(self.publish(self.key).returncode, 0)
        started = subprocess.run([os.path.join(BUILD_DIR, "bin", "matid-server"),
                                  f"--model_repository={self.repo}",
                                  f"--trusted_model_keys={self.key}",  # the private half
                                  "--host=127.0.0.1", "--port=0", "--metrics_port=-1"],
                                 capture_output=True, text=True, timeout=60)
        self.assertNotEqual(started.returncode, 0)
        self.assertIn("--trusted_model_keys", started.stderr)
        refused = self.publish(self.public)  # a public key cannot sign
        self.assertEqual(refused.returncode, 2)
        self.assertIn("--signing_key", refused.stderr)
        self.assertEqual(sorted(os.listdir(os.path.join(self.repo, MODEL))), ["1"])


if __name__ == "__main__":
    unittest.main()
