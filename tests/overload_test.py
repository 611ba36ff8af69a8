#!/usr/bin/python3
"""Overload and faults against the real matid-server program (python3-grpcio
clients, loopback only, every loop bounded in count and time).

The server is matid-server-gated (tests/gated_server_main.cc): matid-server
with a gate in front of the model that the test closes and opens through a
file. With the gate closed, the first image stands in the model and the rest
wait in the queue for as long as the test wants, on any CPU: no check here
depends on how fast the model runs. Batching is off and the queue holds 8.
Checked:
- 10x more concurrent clients than the queue holds: the surplus is shed with
  RESOURCE_EXHAUSTED, every request is answered and counted, Health (on its
  own connection, as a probe has) answers within 2 s while the queue is full,
  memory stays bounded, and the server serves normally once the load stops;
- a deadline shorter than the queue wait: DEADLINE_EXCEEDED, and the model
  never runs for it;
- clients that cancel, or whose process is killed, mid-request: no work left
  behind (the model runs only for callers still waiting);
- SIGTERM under load: every call ends OK, RESOURCE_EXHAUSTED or UNAVAILABLE,
  and the server exits 0 within its grace period.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build"))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(BUILD_DIR, "python"))

import cv2  # noqa: E402
import grpc  # noqa: E402
import numpy as np  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
from tests.edge_harness import Process, rss_kib, scrape, wait_for  # noqa: E402
from matid.v1 import matid_pb2, matid_pb2_grpc  # noqa: E402

QUEUE_SIZE = 8
CLIENTS = 10 * QUEUE_SIZE
LAME_DUCK_MS = 300
DRAIN_GRACE_S = 10
HEALTH_DEADLINE_S = 2.0
PNG = cv2.imencode(".png", np.full((32, 32), 128, np.uint8))[1].tobytes()


def server_connections(port: int) -> int:
    """Open TCP connections whose local end is 127.0.0.1:`port` (the
    server's side), from /proc/net/tcp: established or half-closed."""
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, _, state = line.split()[1:4]
            if local == f"0100007F:{port:04X}" and state in ("01", "08"):  # ESTABLISHED, CLOSE_WAIT
                count += 1
    return count


def request(request_id: str = "") -> matid_pb2.ClassifyRequest:
    return matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=PNG), request_id=request_id)


class Server:
    """matid-server-gated on free loopback ports with the test model."""

    def __init__(self, model_dir: str, log_path: str) -> None:
        self.hold_file = log_path + ".hold"
        for stale in (self.hold_file, self.hold_file + ".arrivals"):
            if os.path.exists(stale):
                os.remove(stale)
        self.process = Process(
            [os.path.join(BUILD_DIR, "tests", "matid-server-gated"), f"--model_dir={model_dir}",
             f"--test_hold_file={self.hold_file}",
             "--host=127.0.0.1", "--port=0", "--metrics_host=127.0.0.1", "--metrics_port=0",
             "--threads=1", "--max_batch_size=1", f"--max_queue_size={QUEUE_SIZE}",
             f"--max_batch_items={QUEUE_SIZE}", f"--lame_duck_ms={LAME_DUCK_MS}",
             f"--drain_grace_seconds={DRAIN_GRACE_S}"],
            r"serving grpc_port=(\d+) metrics_port=(\d+)", log_path)
        self.port = int(self.process.match.group(1))
        self.metrics_port = int(self.process.match.group(2))
        self.pid = self.process.process.pid
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.stub = matid_pb2_grpc.ClassifierStub(self.channel)
        # Health on its own connection, as a Kubernetes probe or load balancer has.
        self.health_channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.health = health_pb2_grpc.HealthStub(self.health_channel)
        self.probe = matid_pb2_grpc.ClassifierStub(self.health_channel)

    def hold(self) -> None:
        """Closes the gate: the next forward pass waits until release()."""
        open(self.hold_file, "w").close()

    def release(self) -> None:
        if os.path.exists(self.hold_file):
            os.remove(self.hold_file)

    def arrivals(self) -> int:
        """Forward passes that reached the gate so far."""
        try:
            return os.path.getsize(self.hold_file + ".arrivals")
        except FileNotFoundError:
            return 0

    def images_run(self) -> float:
        """Images the model has run (the batch-size histogram's sum)."""
        return scrape(self.metrics_port).get("matid_batch_size_sum", 0.0)

    def refusals(self, reason: str) -> float:
        return scrape(self.metrics_port).get(f'matid_refusals_total{{reason="{reason}"}}', 0.0)

    def cancelled_calls(self, rpc: str) -> float:
        return scrape(self.metrics_port).get(f'matid_requests_cancelled_total{{rpc="{rpc}"}}', 0.0)

    def queue_depth(self) -> int:
        return self.probe.Health(matid_pb2.HealthRequest(), timeout=HEALTH_DEADLINE_S).queue_depth

    def wait_idle(self) -> None:
        wait_for(lambda: self.queue_depth() == 0 and scrape(self.metrics_port).get(
            "matid_in_flight_requests", 0) == 0, 30, "the server to go idle")

    def wait_held(self, arrivals: int, queued: int) -> None:
        """Until `arrivals` forward passes stand at (or passed) the gate and
        `queued` images wait behind it."""
        wait_for(lambda: self.arrivals() >= arrivals and self.queue_depth() >= queued, 30,
                 f"{arrivals} forward passes at the gate and {queued} images queued")

    def fill_queue(self, images: int, timeout: float = 60) -> grpc.Future:
        """Closes the gate and sends one BatchClassify of `images` items
        (queued all or none): its first image stands in the model, the rest
        wait in the queue until release()."""
        self.hold()
        arrived = self.arrivals()
        batch = matid_pb2.BatchClassifyRequest(items=[request(f"fill-{i}") for i in range(images)])
        future = self.stub.BatchClassify.future(batch, timeout=timeout)
        self.wait_held(arrived + 1, images - 1)
        return future

    def close(self) -> int:
        self.release()
        self.channel.close()
        self.health_channel.close()
        return self.process.stop()


class OverloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.dir = tempfile.mkdtemp(prefix="matid-overload-")
        cls.model = os.path.join(cls.dir, "model")
        # 640x640 RGB: each queued image is a 4.7 MiB tensor, so the memory
        # bound below means something.
        subprocess.run([sys.executable, "-m", "model_export.make_test_model",
                        "--out", cls.model, "--width", "640", "--height", "640",
                        "--color", "rgb"], cwd=os.path.dirname(HERE), check=True,
                       capture_output=True)

    def setUp(self) -> None:
        self.server = Server(self.model, os.path.join(self.dir, f"{self.id()}.log"))

    def tearDown(self) -> None:
        self.server.release()
        if self.server.process.process.poll() is None:
            self.assertEqual(self.server.close(), 0)

    def classify_all(self, clients: int, calls: int, codes: dict, lock: threading.Lock,
                     stop_at: float) -> list:
        """`clients` threads making `calls` Classify calls each; codes counted."""
        def client(index: int) -> None:
            for call in range(calls):  # bounded in count and time
                if time.monotonic() > stop_at:
                    return
                try:
                    self.server.stub.Classify(request(f"{index}-{call}"), timeout=60)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as error:
                    code = error.code()
                    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        self.assertIn("queue is full", error.details())
                with lock:
                    codes[code] = codes.get(code, 0) + 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        return threads

    def test_ten_times_the_queue_is_shed_counted_and_recovered_from(self) -> None:
        server = self.server
        for _ in range(3):  # warm up
            server.stub.Classify(request(), timeout=30)
        rss_before = rss_kib(server.pid)
        refusals_before = server.refusals("queue_full")
        codes, lock = {}, threading.Lock()

        # The model held with one image in it; then CLIENTS calls at once:
        # QUEUE_SIZE of them wait, the rest are shed.
        server.hold()
        arrived = server.arrivals()
        first = server.stub.Classify.future(request("first"), timeout=60)
        server.wait_held(arrived + 1, 0)
        threads = self.classify_all(CLIENTS, 1, codes, lock, time.monotonic() + 60)
        shed = CLIENTS - QUEUE_SIZE
        wait_for(lambda: codes.get(grpc.StatusCode.RESOURCE_EXHAUSTED, 0) >= shed, 30,
                 f"{shed} calls to be shed")
        server.wait_held(arrived + 1, QUEUE_SIZE)
        health_answers, rss_peak = 0, rss_before
        for _ in range(20):  # Health answers while the queue is full
            reply = server.health.Check(health_pb2.HealthCheckRequest(service="matid.v1.Classifier"),
                                        timeout=HEALTH_DEADLINE_S)
            self.assertEqual(reply.status, health_pb2.HealthCheckResponse.SERVING)
            self.assertEqual(server.queue_depth(), QUEUE_SIZE)
            health_answers += 1
            rss_peak = max(rss_peak, rss_kib(server.pid))
        self.assertEqual(codes, {grpc.StatusCode.RESOURCE_EXHAUSTED: shed})
        server.release()
        self.assertEqual(first.result().request_id, "first")
        for thread in threads:
            thread.join(timeout=60)
        self.assertEqual(codes, {grpc.StatusCode.OK: QUEUE_SIZE,
                                 grpc.StatusCode.RESOURCE_EXHAUSTED: shed})

        # Then free-running load at the model's own pace: whatever this CPU
        # sheds, every call is answered OK or RESOURCE_EXHAUSTED, and counted.
        threads = self.classify_all(CLIENTS, 6, codes, lock, time.monotonic() + 20)
        while any(thread.is_alive() for thread in threads):
            self.assertLessEqual(server.queue_depth(), QUEUE_SIZE)
            rss_peak = max(rss_peak, rss_kib(server.pid))
            time.sleep(0.05)
        for thread in threads:
            thread.join(timeout=60)

        answered = sum(codes.values())
        self.assertEqual(answered, CLIENTS * 7, codes)  # every call answered (and `first`)
        self.assertEqual(set(codes), {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED},
                         codes)
        self.assertGreater(health_answers, 0)
        # Every refusal the clients saw is counted by the server, by reason.
        self.assertEqual(server.refusals("queue_full") - refusals_before,
                         codes[grpc.StatusCode.RESOURCE_EXHAUSTED])
        # Bounded memory: a queue of 8 640x640 RGB tensors (~5 MiB each) plus
        # gRPC buffers for 80 small calls; far less than 256 MiB of growth.
        self.assertLess(rss_peak - rss_before, 256 * 1024, f"RSS {rss_before} -> {rss_peak} KiB")

        server.wait_idle()
        for i in range(10):  # recovered: serves normally again
            response = server.stub.Classify(request(f"after-{i}"), timeout=30)
            self.assertEqual(response.request_id, f"after-{i}")

    def test_deadline_shorter_than_the_queue_wait_is_honoured_and_never_run(self) -> None:
        server = self.server
        run_before = server.images_run()
        busy = server.fill_queue(QUEUE_SIZE - 2)  # held: the late call cannot be reached
        with self.assertRaises(grpc.RpcError) as caught:
            server.stub.Classify(request("late"), timeout=0.03)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        server.release()
        self.assertEqual(len(busy.result().results), QUEUE_SIZE - 2)
        server.wait_idle()
        # Only the batch's images ran, not the expired one.
        self.assertEqual(server.images_run() - run_before, QUEUE_SIZE - 2)
        wait_for(lambda: server.refusals("deadline_expired") >= 1, 10,
                 "the expired request to be counted")

    def test_cancelled_calls_leave_no_work_behind(self) -> None:
        server = self.server
        run_before = server.images_run()
        cancelled_before = server.cancelled_calls("Classify")
        busy = server.fill_queue(3)  # one image held in the model, two queued
        cancelled = [server.stub.Classify.future(request(f"c{i}"), timeout=60) for i in range(4)]
        server.wait_held(1, 2 + 4)
        for future in cancelled:
            future.cancel()
        # The gate opens once the server has handled the four cancellations
        # (on its own gRPC threads: a Health answer on the same connection
        # does not prove that, matid_server_test found).
        wait_for(lambda: server.cancelled_calls("Classify") - cancelled_before >= 4, 10,
                 "the server to see the cancellations")
        server.release()
        self.assertEqual(len(busy.result().results), 3)
        server.wait_idle()
        # The busy batch ran; none of the cancelled calls did.
        self.assertEqual(server.images_run() - run_before, 3)
        wait_for(lambda: server.refusals("cancelled") >= 4, 10, "cancellations to be counted")

    def test_killed_client_process_leaves_no_work_behind(self) -> None:
        server = self.server
        run_before = server.images_run()
        cancelled_before = server.refusals("cancelled")
        # Another process queues 6 calls, then dies without a word.
        with open(os.path.join(self.dir, "killed.png"), "wb") as f:
            f.write(PNG)
        script = (
            "import sys, time, grpc\n"
            f"sys.path.insert(0, {os.path.join(BUILD_DIR, 'python')!r})\n"
            "from matid.v1 import matid_pb2, matid_pb2_grpc\n"
            f"stub = matid_pb2_grpc.ClassifierStub(grpc.insecure_channel('127.0.0.1:{server.port}'))\n"
            f"png = open({os.path.join(self.dir, 'killed.png')!r}, 'rb').read()\n"
            "req = matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=png))\n"
            "batch = matid_pb2.BatchClassifyRequest(items=[req] * 6)\n"
            "call = stub.BatchClassify.future(batch, timeout=60)\n"
            "print('sent', flush=True)\n"
            "time.sleep(60)\n")
        connections_before = server_connections(server.port)
        server.hold()
        arrived = server.arrivals()
        client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(client.stdout.readline().strip(), "sent")
            server.wait_held(arrived + 1, 5)  # one image in the model, five queued
        finally:
            client.kill()
            client.wait(timeout=10)
            client.stdout.close()
        # The server has closed its end of the dead client's connection (the
        # socket leaves /proc/net/tcp), so it knows the calls' caller is gone.
        wait_for(lambda: server_connections(server.port) <= connections_before, 30,
                 "the server to close the killed client's connection")
        server.release()
        server.wait_idle()
        ran = server.images_run() - run_before
        # The image that stood in the model when the connection dropped; the
        # rest were answered CANCELLED unrun. (Up to 3 tolerated: a socket
        # reset by the kernel leaves /proc/net/tcp before gRPC has read it.)
        self.assertGreaterEqual(ran, 1)
        self.assertLessEqual(ran, 3)
        wait_for(lambda: server.refusals("cancelled") - cancelled_before + ran >= 6, 10,
                 "every image to be either run or counted as cancelled")

    def test_sigterm_under_load_drains_and_exits_zero(self) -> None:
        server = self.server
        codes, lock = {}, threading.Lock()
        stop_at = time.monotonic() + 30

        late_codes = {}  # calls started once the lame duck was over
        signalled = [float("inf")]

        def client(index: int) -> None:
            call = 0
            while time.monotonic() < stop_at:  # bounded; ends at the first UNAVAILABLE
                started = time.monotonic()
                try:
                    server.stub.Classify(request(f"{index}-{call}"), timeout=30)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as error:
                    code = error.code()
                late = started > signalled[0] + LAME_DUCK_MS / 1000
                with lock:
                    counted = late_codes if late else codes
                    counted[code] = counted.get(code, 0) + 1
                if code == grpc.StatusCode.UNAVAILABLE:
                    return  # a well-behaved client goes elsewhere
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    time.sleep(0.02)  # and backs off when shed
                call += 1

        server.hold()
        arrived = server.arrivals()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(2 * QUEUE_SIZE)]
        for thread in threads:
            thread.start()
        server.wait_held(arrived + 1, QUEUE_SIZE)  # under load: the queue is full
        signalled[0] = time.monotonic()
        server.process.process.send_signal(signal.SIGTERM)
        # Lame duck: new calls get UNAVAILABLE; then the queue drains.
        wait_for(lambda: codes.get(grpc.StatusCode.UNAVAILABLE, 0) > 0, 30,
                 "a call refused UNAVAILABLE while draining")
        server.release()
        exit_code = server.process.process.wait(timeout=LAME_DUCK_MS / 1000 + DRAIN_GRACE_S + 5)
        self.assertEqual(exit_code, 0)
        self.assertLess(time.monotonic() - signalled[0], LAME_DUCK_MS / 1000 + DRAIN_GRACE_S)
        for thread in threads:
            thread.join(timeout=60)
        server.channel.close()
        server.health_channel.close()
        server.process.log.close()
        self.assertTrue(set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                       grpc.StatusCode.UNAVAILABLE}, codes)
        # A call started after the lame duck can meet the listener closing:
        # gRPC itself then answers UNAVAILABLE or CANCELLED, never an answer
        # lost after the model ran (those were OK above).
        self.assertTrue(set(late_codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE,
                                            grpc.StatusCode.CANCELLED,
                                            grpc.StatusCode.RESOURCE_EXHAUSTED}, late_codes)
        # The images queued when the signal came were answered, not dropped.
        self.assertGreaterEqual(codes.get(grpc.StatusCode.OK, 0), 1 + QUEUE_SIZE, codes)
        self.assertIn("matid-server: stopped", server.process.output())


if __name__ == "__main__":
    unittest.main(verbosity=2)
