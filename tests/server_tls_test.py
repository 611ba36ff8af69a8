#!/usr/bin/python3
"""matid-server over TLS and mutual TLS, with certificates made here by
openssl, called by Debian's python3-grpcio: the right CA and client
certificate get through; plaintext, a missing or untrusted client
certificate, and a subject off the allow-list do not; the same holds for
the Open Inference Protocol on the same port."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import Any, Optional

import cv2
import grpc
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(HERE, "..", "build"))
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))
sys.path.insert(0, os.path.join(BUILD, "python"))
from tests.edge_harness import Mosquitto, Process, make_certificates  # noqa: E402
from inference import grpc_service_pb2, grpc_service_pb2_grpc  # noqa: E402
from matid.v1 import matid_pb2, matid_pb2_grpc  # noqa: E402

PNG = cv2.imencode(".png", np.zeros((28, 28), np.uint8))[1].tobytes()


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class ServerTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.mkdtemp(prefix="matid-tls-")
        cls.certs = make_certificates(cls.tmp)

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start_server(self, *tls_flags: str) -> str:
        server = Process([os.path.join(BUILD, "bin", "matid-server"), f"--model_dir={MODEL}",
                          "--host=127.0.0.1", "--port=0", "--metrics_port=-1", "--threads=1",
                          f"--tls_cert={self.certs['server.crt']}",
                          f"--tls_key={self.certs['server.key']}", *tls_flags],
                         r"serving grpc_port=(\d+)",
                         tempfile.mktemp(prefix="server-", suffix=".log", dir=self.tmp))
        self.addCleanup(server.stop)
        return f"127.0.0.1:{server.match.group(1)}"

    def classify(self, address: str, client: Optional[str] = None,
                 secure: bool = True, api: str = "matid.v1") -> Any:
        if secure:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read(self.certs["ca.crt"]),
                private_key=read(self.certs[f"{client}.key"]) if client else None,
                certificate_chain=read(self.certs[f"{client}.crt"]) if client else None)
            channel = grpc.secure_channel(address, credentials)
        else:
            channel = grpc.insecure_channel(address)
        with channel:
            if api == "inference":  # the Open Inference Protocol
                stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel)
                tensor = grpc_service_pb2.ModelInferRequest.InferInputTensor(
                    name="IMAGE", datatype="BYTES", shape=[1])
                tensor.contents.bytes_contents.append(PNG)
                return stub.ModelInfer(grpc_service_pb2.ModelInferRequest(inputs=[tensor]),
                                       timeout=10)
            stub = matid_pb2_grpc.ClassifierStub(channel)
            return stub.Classify(matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=PNG)),
                                 timeout=10)

    def assert_refused(self, code: grpc.StatusCode, *args: Any, **kwargs: Any) -> str:
        with self.assertRaises(grpc.RpcError) as caught:
            self.classify(*args, **kwargs)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        return caught.exception.details()

    def test_tls_serves_clients_that_trust_the_ca_and_refuses_plaintext(self) -> None:
        address = self.start_server()
        self.assertEqual(len(self.classify(address).predictions), 5)
        self.assert_refused(grpc.StatusCode.UNAVAILABLE, address, secure=False)

    def test_mutual_tls_requires_a_client_certificate_from_the_ca(self) -> None:
        address = self.start_server(f"--tls_client_ca={self.certs['ca.crt']}")
        self.assertEqual(len(self.classify(address, client="client").predictions), 5)
        self.assert_refused(grpc.StatusCode.UNAVAILABLE, address)  # no client certificate
        self.assert_refused(grpc.StatusCode.UNAVAILABLE, address, client="rogue")  # other CA

    def test_matid_classify_speaks_mutual_tls(self) -> None:
        address = self.start_server(f"--tls_client_ca={self.certs['ca.crt']}")
        image = os.path.join(self.tmp, "part.png")
        with open(image, "wb") as f:
            f.write(PNG)
        classify = [os.path.join(BUILD, "bin", "matid-classify"), f"--server={address}",
                    "--format=csv", "--connect_timeout_seconds=3"]
        good = subprocess.run(classify + [f"--tls_ca={self.certs['ca.crt']}",
                                          f"--tls_cert={self.certs['client.crt']}",
                                          f"--tls_key={self.certs['client.key']}", image],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(good.returncode, 0, good.stderr)
        self.assertIn(",OK,", good.stdout)
        without_certificate = subprocess.run(classify + [f"--tls_ca={self.certs['ca.crt']}", image],
                                             capture_output=True, text=True, timeout=60)
        self.assertEqual(without_certificate.returncode, 2)
        self.assertIn("cannot reach server", without_certificate.stderr)

    def test_health_probe_speaks_mutual_tls(self) -> None:
        address = self.start_server(f"--tls_client_ca={self.certs['ca.crt']}")
        probe = [os.path.join(BUILD, "bin", "matid-health-probe"), f"--server={address}",
                 f"--tls_ca={self.certs['ca.crt']}"]
        good = subprocess.run(probe + [f"--tls_cert={self.certs['client.crt']}",
                                       f"--tls_key={self.certs['client.key']}"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(good.returncode, 0, good.stderr)
        self.assertEqual(good.stdout.strip(), "SERVING")
        self.assertEqual(subprocess.run(probe, capture_output=True, timeout=60).returncode, 1)
        half = subprocess.run(probe + [f"--tls_cert={self.certs['client.crt']}"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(half.returncode, 1)
        self.assertIn("needs both --tls_cert and --tls_key", half.stderr)

    def test_camera_streams_over_mutual_tls(self) -> None:
        address = self.start_server(f"--tls_client_ca={self.certs['ca.crt']}")
        frames = os.path.join(self.tmp, "frames")
        os.makedirs(frames, exist_ok=True)
        for i in range(5):
            with open(os.path.join(frames, f"{i}.png"), "wb") as f:
                f.write(PNG)
        broker = Mosquitto(self.tmp, "camera-broker")  # started by its constructor
        self.addCleanup(broker.stop)
        camera = subprocess.run(
            [os.path.join(BUILD, "bin", "matid-camera"), f"--source={frames}", "--camera_id=tls",
             f"--server={address}", f"--mqtt_port={broker.port}", "--metrics_port=-1",
             f"--tls_ca={self.certs['ca.crt']}", f"--tls_cert={self.certs['client.crt']}",
             f"--tls_key={self.certs['client.key']}"],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(camera.returncode, 0, camera.stdout + camera.stderr)
        self.assertIn("5 frames captured, 5 classified, 0 dropped (server behind), 0 refused",
                      camera.stdout)

    def test_allow_list_admits_only_listed_subjects(self) -> None:
        address = self.start_server(f"--tls_client_ca={self.certs['ca.crt']}",
                                    "--allowed_client_subjects=someone-else,CN=another")
        details = self.assert_refused(grpc.StatusCode.PERMISSION_DENIED, address, client="client")
        self.assertIn("matid-edge-test", details)
        address = self.start_server(f"--tls_client_ca={self.certs['ca.crt']}",
                                    "--allowed_client_subjects=matid-edge-test")
        self.assertEqual(len(self.classify(address, client="client").predictions), 5)

    def test_open_inference_protocol_is_covered_too(self) -> None:
        address = self.start_server(f"--tls_client_ca={self.certs['ca.crt']}",
                                    "--allowed_client_subjects=matid-edge-test")
        answer = self.classify(address, client="client", api="inference")
        self.assertEqual(list(answer.outputs[0].shape), [1, 10])
        self.assert_refused(grpc.StatusCode.UNAVAILABLE, address, secure=False, api="inference")
        self.assert_refused(grpc.StatusCode.UNAVAILABLE, address, api="inference")  # no client cert
        address = self.start_server(f"--tls_client_ca={self.certs['ca.crt']}",
                                    "--allowed_client_subjects=someone-else")
        self.assert_refused(grpc.StatusCode.PERMISSION_DENIED, address, client="client",
                            api="inference")

    def test_inconsistent_tls_flags_fail_at_start(self) -> None:
        result = subprocess.run([os.path.join(BUILD, "bin", "matid-server"), f"--model_dir={MODEL}",
                                 "--port=0", "--metrics_port=-1",
                                 f"--tls_cert={self.certs['server.crt']}"],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 1)
        self.assertIn("--tls_cert needs --tls_key", result.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
