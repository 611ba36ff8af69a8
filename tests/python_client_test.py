#!/usr/bin/python3
"""A Python gRPC client (Debian's python3-grpcio) against matid-server.

Proves the API works from another language: starts the real server on a
free loopback port, calls Classify, BatchClassify, Health and the standard
grpc.health.v1 service with stubs generated from proto/, stops the server.
Run by ctest; needs MATID_BUILD_DIR and MATID_TEST_MODEL.
"""
import os
import re
import signal
import subprocess
import sys
import time
import unittest

BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build"))
MODEL_DIR = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD_DIR, "test_model"))
sys.path.insert(0, os.path.join(BUILD_DIR, "python"))

import cv2  # noqa: E402
import grpc  # noqa: E402
import numpy as np  # noqa: E402
import health_pb2  # noqa: E402  (grpc.health.v1, generated from proto/)
import health_pb2_grpc  # noqa: E402
from matid.v1 import matid_pb2, matid_pb2_grpc  # noqa: E402


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    ok, data = cv2.imencode(".png", rng.integers(0, 256, (28, 28), dtype=np.uint8))
    assert ok
    return data.tobytes()


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.server = subprocess.Popen(
            [os.path.join(BUILD_DIR, "bin", "matid-server"), f"--model_dir={MODEL_DIR}",
             "--host=127.0.0.1", "--port=0", "--metrics_port=-1", "--threads=1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        port = None
        while time.monotonic() < deadline:
            line = cls.server.stdout.readline()
            if not line:
                break
            match = re.search(r"serving grpc_port=(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        if port is None:
            cls.server.kill()
            raise RuntimeError("matid-server did not start")
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(cls.channel).result(timeout=10)
        cls.stub = matid_pb2_grpc.ClassifierStub(cls.channel)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.channel.close()
        cls.server.send_signal(signal.SIGTERM)
        try:
            code = cls.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            raise
        assert code == 0, f"matid-server exited with {code}"

    def test_classify(self) -> None:
        request = matid_pb2.ClassifyRequest(
            image=matid_pb2.Image(encoded=png(1)), top_k=3, request_id="py-1")
        response = self.stub.Classify(request, timeout=30)
        self.assertEqual(response.request_id, "py-1")
        self.assertEqual(len(response.predictions), 3)
        scores = [p.score for p in response.predictions]
        self.assertEqual(scores, sorted(scores, reverse=True))
        self.assertEqual(response.model.name, "matid-test-model")

    def test_classify_raw_pixels(self) -> None:
        pixels = np.full((28, 28), 128, dtype=np.uint8).tobytes()
        raw = matid_pb2.RawImage(width=28, height=28, format=matid_pb2.PIXEL_FORMAT_GRAY8,
                                 pixels=pixels)
        response = self.stub.Classify(matid_pb2.ClassifyRequest(image=matid_pb2.Image(raw=raw)),
                                      timeout=30)
        self.assertEqual(len(response.predictions), 5)

    def test_bad_image_is_invalid_argument(self) -> None:
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.Classify(matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=b"junk")),
                               timeout=30)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("could not read the image size", caught.exception.details())

    def test_batch_classify(self) -> None:
        items = [matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=png(i))) for i in range(4)]
        response = self.stub.BatchClassify(matid_pb2.BatchClassifyRequest(items=items), timeout=30)
        self.assertEqual([r.status.code for r in response.results], [0, 0, 0, 0])

    def test_stream(self) -> None:
        frames = (matid_pb2.Frame(seq=i, image=matid_pb2.Image(encoded=png(i))) for i in range(10))
        seqs = [result.seq for result in self.stub.ClassifyStream(frames, timeout=30)]
        self.assertEqual(seqs, list(range(10)))

    def test_health(self) -> None:
        health = self.stub.Health(matid_pb2.HealthRequest(), timeout=10)
        self.assertEqual(health.state, matid_pb2.HealthResponse.SERVING)
        self.assertEqual(health.model.input.width, 28)
        standard = health_pb2_grpc.HealthStub(self.channel)
        answer = standard.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        self.assertEqual(answer.status, health_pb2.HealthCheckResponse.SERVING)


if __name__ == "__main__":
    unittest.main(verbosity=2)
