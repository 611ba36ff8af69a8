#!/usr/bin/python3
"""Soak: runs matid-server under mixed load for a while and watches it for
growth. Not a test (it takes minutes); its verdict and samples go to stdout
and a JSON file, and the last run is recorded in bench/RESULTS.md.

Load (python3-grpcio clients on loopback, all at once): good Classify calls,
bad images (random bytes, truncated PNG, a decompression-bomb header, raw
pixels of the wrong length, no image), BatchClassify with good and bad
items, camera streams that open, send a few frames and close (some cancelled
half-way), calls with deadlines too short to meet, Health checks and /metrics
scrapes. Every few seconds it samples the server's RSS, threads and open
file descriptors. The verdict compares the first samples after warm-up with
the last ones: growth beyond noise, or any status code outside those each
kind of call may get, fails the run (exit code 1).

    /usr/bin/python3 -m bench.soak --minutes 10 [--model DIR] [--json FILE]
"""
import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from model_export import debian_python  # noqa: E402

debian_python.ensure()

import cv2  # noqa: E402
from tests.edge_harness import Process  # noqa: E402  (matid programs waited on until they start)
import grpc  # noqa: E402
import numpy as np  # noqa: E402
from scripts import machine  # noqa: E402

# Growth allowed between the early and late samples (noise of allocator
# caches and gRPC's lazily grown pools, as seen on repeated runs).
RSS_NOISE_KIB = 16 * 1024
THREADS_NOISE = 2
FDS_NOISE = 4


def load_stubs(build_dir: str) -> tuple:
    sys.path.insert(0, os.path.join(build_dir, "python"))
    from matid.v1 import matid_pb2, matid_pb2_grpc
    import health_pb2
    import health_pb2_grpc
    return matid_pb2, matid_pb2_grpc, health_pb2, health_pb2_grpc


def proc_sample(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    return {
        "rss_kib": int(re.search(r"VmRSS:\s+(\d+)", status).group(1)),
        "threads": int(re.search(r"Threads:\s+(\d+)", status).group(1)),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


class Load:
    """The mixed clients; counts every call's outcome by kind and code."""

    def __init__(self, pb: Any, pb_grpc: Any, health_pb2: Any, health_grpc: Any, port: int,
                 metrics_port: int,
                 stop: threading.Event) -> None:
        self.pb = pb
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.ClassifierStub(self.channel)
        self.health = health_grpc.HealthStub(self.channel)
        self.health_pb2 = health_pb2
        self.metrics_port = metrics_port
        self.stop = stop
        self.lock = threading.Lock()
        self.outcomes = {}  # (kind, code name) -> count
        self.unexpected = []  # first few surprises, for the report
        rng = np.random.default_rng(11)
        self.good = [cv2.imencode(".png", rng.integers(0, 256, (28, 28), dtype=np.uint8))[1]
                     .tobytes() for _ in range(16)]
        png = self.good[0]
        bomb = bytearray(png[:33])
        bomb[16:24] = (50000).to_bytes(4, "big") + (50000).to_bytes(4, "big")
        self.bad = [
            pb.Image(encoded=rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()),
            pb.Image(encoded=png[: len(png) // 2]),
            pb.Image(encoded=bytes(bomb)),
            pb.Image(raw=pb.RawImage(width=28, height=28, format=pb.PIXEL_FORMAT_RGB8,
                                     pixels=bytes(100))),
            pb.Image(),
        ]

    def count(self, kind: str, code: grpc.StatusCode, allowed: set) -> None:
        with self.lock:
            key = (kind, code.name)
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            if code not in allowed and len(self.unexpected) < 20:
                self.unexpected.append(key)

    def call(self, kind: str, allowed: set, fn: Callable[[], Any]) -> None:
        try:
            fn()
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
        self.count(kind, code, allowed)

    def good_image(self) -> Any:
        return self.pb.Image(encoded=random.choice(self.good))

    def loop(self, kind: str, allowed: set, fn: Callable[[], Any]) -> None:
        while not self.stop.is_set():
            self.call(kind, allowed, fn)

    # One function per kind of client.
    def classify(self) -> None:
        self.stub.Classify(self.pb.ClassifyRequest(image=self.good_image(), top_k=3), timeout=10)

    def bad_input(self) -> None:
        self.stub.Classify(self.pb.ClassifyRequest(image=random.choice(self.bad)), timeout=10)

    def batch(self) -> None:
        items = [self.pb.ClassifyRequest(image=self.good_image()) for _ in range(6)]
        items.append(self.pb.ClassifyRequest(image=random.choice(self.bad)))
        response = self.stub.BatchClassify(self.pb.BatchClassifyRequest(items=items), timeout=10)
        if len(response.results) != len(items) or response.results[-1].status.code != 3:
            raise AssertionError("BatchClassify answer does not match its items")

    def stream(self) -> None:
        frames = random.randint(1, 20)
        cancel_after = random.choice([None, None, frames // 2])

        def requests():
            for seq in range(frames):
                yield self.pb.Frame(seq=seq, image=self.good_image())

        call = self.stub.ClassifyStream(requests(), timeout=10)
        received = 0
        for result in call:
            if result.seq != received:
                raise AssertionError("stream results out of order")
            received += 1
            if cancel_after is not None and received > cancel_after:
                call.cancel()
                return
        if received != frames:
            raise AssertionError(f"stream: {received} results for {frames} frames")

    def short_deadline(self) -> None:
        self.stub.Classify(self.pb.ClassifyRequest(image=self.good_image()), timeout=0.0005)

    def observe(self) -> None:
        self.health.Check(self.health_pb2.HealthCheckRequest(), timeout=5)
        self.stub.Health(self.pb.HealthRequest(), timeout=5)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as response:
            response.read()
        time.sleep(0.2)

    def threads(self) -> list[threading.Thread]:
        ok = {grpc.StatusCode.OK}
        busy = {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        kinds = [
            ("classify", busy, self.classify), ("classify", busy, self.classify),
            ("bad_input", {grpc.StatusCode.INVALID_ARGUMENT}, self.bad_input),
            ("batch", busy, self.batch),
            ("stream", busy | {grpc.StatusCode.CANCELLED}, self.stream),
            ("short_deadline", busy | {grpc.StatusCode.DEADLINE_EXCEEDED}, self.short_deadline),
            ("observe", ok, self.observe),
        ]
        return [threading.Thread(target=self.loop, args=kind, daemon=True) for kind in kinds]


def window_median(samples: list[dict], key: str, start: int, end: int) -> float:
    return statistics.median(s[key] for s in samples[start:end])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--model", help="model directory (default: a tiny test model, made now)")
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    parser.add_argument("--sample-seconds", type=float, default=5)
    parser.add_argument("--warmup-seconds", type=float, default=30)
    parser.add_argument("--json", default=os.path.join(HERE, "results", "soak.json"))
    parser.add_argument("server_args", nargs="*", help="extra matid-server flags (after --)")
    args = parser.parse_args()

    pb, pb_grpc, health_pb2, health_grpc = load_stubs(args.build_dir)
    workdir = tempfile.mkdtemp(prefix="matid-soak-")
    model = args.model
    if model is None:
        model = os.path.join(workdir, "model")
        subprocess.run([sys.executable, "-m", "model_export.make_test_model", "--out", model],
                       cwd=ROOT, check=True, capture_output=True)
    log_path = os.path.join(workdir, "server.log")
    started_server = Process(
        [os.path.join(args.build_dir, "bin", "matid-server"), f"--model_dir={model}",
         "--host=127.0.0.1", "--port=0", "--metrics_host=127.0.0.1", "--metrics_port=0",
         "--threads=1", "--max_queue_size=32", "--max_batch_items=16", *args.server_args],
        r"serving grpc_port=(\d+) metrics_port=(\d+)", log_path)
    server, ports = started_server.process, started_server.match

    stop = threading.Event()
    load = Load(pb, pb_grpc, health_pb2, health_grpc, int(ports.group(1)), int(ports.group(2)),
                stop)
    threads = load.threads()
    for thread in threads:
        thread.start()
    started = time.monotonic()
    end = started + args.minutes * 60
    samples = []
    print(f"soak: {args.minutes} min, sampling every {args.sample_seconds}s (pid {server.pid})")
    print(f"{'t(s)':>6} {'rss MiB':>8} {'threads':>7} {'fds':>5} {'calls':>8}")
    while time.monotonic() < end and server.poll() is None:
        time.sleep(args.sample_seconds)
        sample = proc_sample(server.pid)
        sample["t"] = round(time.monotonic() - started, 1)
        with load.lock:
            sample["calls"] = sum(load.outcomes.values())
        samples.append(sample)
        print(f"{sample['t']:6.0f} {sample['rss_kib'] / 1024:8.1f} {sample['threads']:7d} "
              f"{sample['fds']:5d} {sample['calls']:8d}", flush=True)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    load.channel.close()
    crashed = server.poll() is not None
    exit_code = server.poll()
    if not crashed:
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=30)
    started_server.log.close()

    # Early window: the samples just after warm-up; late window: the last ones.
    first = next((i for i, s in enumerate(samples) if s["t"] >= args.warmup_seconds), 0)
    width = max(1, min(6, (len(samples) - first) // 3))
    growth = {}
    for key in ("rss_kib", "threads", "fds"):
        early = window_median(samples, key, first, first + width)
        late = window_median(samples, key, len(samples) - width, len(samples))
        growth[key] = late - early
    failures = []
    if crashed:
        failures.append(f"server died during the soak (exit {exit_code}); log {log_path}")
    elif exit_code != 0:
        failures.append(f"server exited {exit_code} after SIGTERM")
    if growth["rss_kib"] > RSS_NOISE_KIB:
        failures.append(f"RSS grew {growth['rss_kib'] / 1024:.1f} MiB")
    if growth["threads"] > THREADS_NOISE:
        failures.append(f"threads grew by {growth['threads']}")
    if growth["fds"] > FDS_NOISE:
        failures.append(f"file descriptors grew by {growth['fds']}")
    if load.unexpected:
        failures.append(f"unexpected outcomes: {load.unexpected}")

    outcomes = {f"{kind}:{code}": n for (kind, code), n in sorted(load.outcomes.items())}
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine.describe(),
        "minutes": args.minutes, "model": model, "server_args": args.server_args,
        "calls": sum(load.outcomes.values()), "outcomes": outcomes,
        "growth": {"rss_mib": round(growth["rss_kib"] / 1024, 2), "threads": growth["threads"],
                   "fds": growth["fds"]},
        "peak_rss_mib": round(max(s["rss_kib"] for s in samples) / 1024, 1) if samples else None,
        "samples": samples, "failures": failures, "server_exit_code": exit_code,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)
    print(f"calls {report['calls']}: " + ", ".join(f"{k}={v}" for k, v in outcomes.items()))
    print(f"growth after warm-up: RSS {report['growth']['rss_mib']} MiB, threads "
          f"{growth['threads']}, fds {growth['fds']}; peak RSS {report['peak_rss_mib']} MiB")
    print("soak: " + ("FAILED: " + "; ".join(failures) if failures else "no growth beyond noise"))
    print(f"soak: JSON in {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
