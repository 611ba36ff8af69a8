#!/usr/bin/python3
"""matid.v1.ModelAdmin refuses callers that are neither on loopback nor
listed in --admin_client_subjects, against the real server over mutual TLS.

A caller from loopback cannot show that, so the test gives this machine an
address of its own (on a veth pair the test creates and deletes,
10.213.0.0/16; root and iproute2 needed) and serves there only. The
classifying client (certificate CN matid-edge-test) may classify but not
administer; the operator (CN matid-ops, listed) may administer. The Open
Inference Protocol's repository RPCs follow the same rule.

On this machine's own addresses (LocalAdminTest): IPv6 loopback is granted
like 127.0.0.1; with --admin_from_loopback=false neither is, and the admin
unix socket (--admin_socket, mode 0660) is the way in, through matid-admin;
the server also serves on a unix socket given as --host.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build"))
TEST_MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD_DIR, "test_model"))
sys.path.insert(0, os.path.join(BUILD_DIR, "python"))

import cv2  # noqa: E402
import grpc  # noqa: E402
import numpy as np  # noqa: E402
from model_export import repository  # noqa: E402
from tests.edge_harness import Process, free_port, make_certificates, run  # noqa: E402
from inference import grpc_service_pb2, grpc_service_pb2_grpc  # noqa: E402
from matid.v1 import admin_pb2, admin_pb2_grpc, matid_pb2, matid_pb2_grpc  # noqa: E402

PNG = cv2.imencode(".png", np.full((28, 28), 90, np.uint8))[1].tobytes()


def make_client_certificate(certs: dict, directory: str, name: str, cn: str) -> tuple[str, str]:
    key, csr, crt = (os.path.join(directory, f"{name}.{ext}") for ext in ("key", "csr", "crt"))
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-subj", f"/CN={cn}", "-keyout", key, "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", certs["ca.crt"], "-CAkey", certs["ca.key"],
        "-CAcreateserial", "-days", "2", "-out", crt)
    return crt, key


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("ip"),
                     "needs root and iproute2 to give the machine a non-loopback test address")
class AdminAccessTest(unittest.TestCase):
    def setUp(self) -> None:
        if not os.path.isdir(TEST_MODEL):
            self.skipTest("the test model is not built")
        self.tmp = tempfile.mkdtemp(prefix="matid-admin-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.certs = make_certificates(self.tmp)
        self.ops = make_client_certificate(self.certs, self.tmp, "ops", "matid-ops")
        link = f"matidadm{os.getpid() % 100000}"
        self.address = f"10.213.{os.getpid() % 250}.{1 + os.getpid() // 250 % 250}"
        run("ip", "link", "add", link, "type", "veth", "peer", "name", link + "p")
        self.addCleanup(subprocess.run, ["ip", "link", "delete", link], check=False)
        run("ip", "addr", "add", f"{self.address}/32", "dev", link)
        run("ip", "link", "set", link, "up")
        repo = os.path.join(self.tmp, "repo")
        repository.publish(TEST_MODEL, repo, "parts")
        port = free_port()
        self.server = Process(
            [os.path.join(BUILD_DIR, "bin", "matid-server"), f"--model_repository={repo}",
             f"--host={self.address}", f"--port={port}", "--metrics_port=-1",
             f"--tls_cert={self.certs['server.crt']}", f"--tls_key={self.certs['server.key']}",
             f"--tls_client_ca={self.certs['ca.crt']}", "--admin_client_subjects=matid-ops"],
            r"serving grpc_port=(\d+)", os.path.join(self.tmp, "server.log"))
        self.addCleanup(self.server.stop)
        self.target = f"{self.address}:{port}"

    def channel(self, cert: str, key: str) -> grpc.Channel:
        def read(path: str) -> bytes:
            with open(path, "rb") as f:
                return f.read()
        credentials = grpc.ssl_channel_credentials(read(self.certs["ca.crt"]), read(key), read(cert))
        # The server's certificate names 127.0.0.1 and localhost, not the test address.
        channel = grpc.secure_channel(self.target, credentials,
                                      options=[("grpc.ssl_target_name_override", "localhost")])
        self.addCleanup(channel.close)
        return channel

    def test_only_listed_certificates_administer_from_off_loopback(self) -> None:
        camera = self.channel(self.certs["client.crt"], self.certs["client.key"])
        request = matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=PNG))
        answer = matid_pb2_grpc.ClassifierStub(camera).Classify(request, timeout=10)
        self.assertEqual(answer.model.version, "1")  # a caller, not an administrator:
        with self.assertRaises(grpc.RpcError) as refused:
            admin_pb2_grpc.ModelAdminStub(camera).Pin(
                admin_pb2.PinRequest(model="parts", versions=[1]), timeout=10)
        self.assertEqual(refused.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("--admin_client_subjects", refused.exception.details())
        self.assertIn("matid-edge-test", refused.exception.details())
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "repo", "parts",
                                                     "version_policy.json")))
        unload = grpc_service_pb2.RepositoryModelUnloadRequest(model_name="parts")
        unload.parameters["version"].int64_param = 1
        with self.assertRaises(grpc.RpcError) as refused:
            grpc_service_pb2_grpc.GRPCInferenceServiceStub(camera).RepositoryModelUnload(
                unload, timeout=10)
        self.assertEqual(refused.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("--admin_client_subjects", refused.exception.details())

        operator = self.channel(*self.ops)
        loaded = grpc_service_pb2.RepositoryModelLoadRequest(model_name="parts")
        loaded.parameters["version"].int64_param = 1
        grpc_service_pb2_grpc.GRPCInferenceServiceStub(operator).RepositoryModelLoad(
            loaded, timeout=30)
        listed = admin_pb2_grpc.ModelAdminStub(operator).ListModels(
            admin_pb2.ListModelsRequest(), timeout=10)
        self.assertEqual([(m.name, m.version) for m in listed.models], [("parts", "1")])
        admin_pb2_grpc.ModelAdminStub(operator).Pin(
            admin_pb2.PinRequest(model="parts", versions=[1]), timeout=30)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "repo", "parts",
                                                    "version_policy.json")))


class LocalAdminTest(unittest.TestCase):
    def setUp(self) -> None:
        if not os.path.isdir(TEST_MODEL):
            self.skipTest("the test model is not built")
        self.tmp = tempfile.mkdtemp(prefix="matid-admin-local-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.repo = os.path.join(self.tmp, "repo")
        repository.publish(TEST_MODEL, self.repo, "parts")

    def start_server(self, *flags: str) -> Process:
        server = Process([os.path.join(BUILD_DIR, "bin", "matid-server"),
                          f"--model_repository={self.repo}", "--metrics_port=-1", "--threads=1",
                          "--lame_duck_ms=0", *flags],
                         r"serving grpc_port=(\d+)", os.path.join(self.tmp, "server.log"))
        self.addCleanup(server.stop)
        return server

    def admin(self, target: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([os.path.join(BUILD_DIR, "bin", "matid-admin"),
                               f"--server={target}", *args],
                              capture_output=True, text=True, timeout=60)

    def test_ipv6_loopback_administers_like_ipv4_loopback(self) -> None:
        port = free_port()
        self.start_server("--host=::", f"--port={port}")
        for target in (f"127.0.0.1:{port}", f"[::1]:{port}"):
            done = self.admin(target, "list")
            self.assertEqual(done.returncode, 0, f"{target}: {done.stderr}")
            self.assertIn("parts", done.stdout)

    def test_without_the_loopback_grant_only_the_admin_socket_administers(self) -> None:
        port = free_port()
        socket_path = os.path.join(self.tmp, "admin.sock")
        self.start_server("--host=::", f"--port={port}", f"--admin_socket={socket_path}",
                          "--admin_from_loopback=false")
        self.assertEqual(os.stat(socket_path).st_mode & 0o777, 0o660)
        for target in (f"127.0.0.1:{port}", f"[::1]:{port}"):
            done = self.admin(target, "pin", "parts", "1")
            self.assertNotEqual(done.returncode, 0, target)
            self.assertIn("the admin service takes callers on the admin socket (--admin_socket), "
                          "or with a client certificate", done.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.repo, "parts", "version_policy.json")))
        # Classifying over TCP is unaffected.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = matid_pb2_grpc.ClassifierStub(channel).Classify(
                matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=PNG)), timeout=30)
        self.assertEqual(answer.model.version, "1")
        done = self.admin(f"unix:{socket_path}", "pin", "parts", "1")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.repo, "parts", "version_policy.json")))

    def test_serves_on_a_unix_socket_given_as_host(self) -> None:
        socket_path = os.path.join(self.tmp, "serve.sock")
        self.start_server(f"--host=unix:{socket_path}")
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            answer = matid_pb2_grpc.ClassifierStub(channel).Classify(
                matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=PNG)), timeout=30)
        self.assertEqual(answer.model.version, "1")


if __name__ == "__main__":
    unittest.main()
