#!/usr/bin/python3
"""Benchmark (not a test): a model swap under steady load (issue 13).
ResNet-18 at 224x224 (random weights), fp32 and int8, on the box's server
flags (--threads=1 --inference_workers=2), 2 vCPU.

Four python3-grpcio clients classify 224x224 JPEGs in a closed loop. After
a warm-up, a `before` window; then the next version is published into the
repository and the server gets SIGHUP; `during` lasts until Health shows
the new version serving alone (the old one released); then an `after`
window. Per window: p50 and p99 latency, images/s and failures; per swap:
the time from SIGHUP to the new version serving and to the old one being
released, and the load time the server logged. Variants alternate in rounds
(this machine's speed drifts); medians of the rounds are reported. Prints
the figures and writes bench/results/model-swap.json.

    /usr/bin/python3 -m bench.model_swap [--rounds 3] [--window_seconds 10]
"""
import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from typing import Optional

import cv2
import numpy as np

from bench.report import RESNET18, ensure_resnet18, write_report
from model_export import repository
from tests.edge_harness import Process, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
MODEL = RESNET18  # shared with bench.camera_resolution
sys.path.insert(0, os.path.join(BUILD_DIR, "python"))

import grpc  # noqa: E402
from matid.v1 import matid_pb2, matid_pb2_grpc  # noqa: E402

AVAILABLE = matid_pb2.ModelVersionStatus.AVAILABLE


class Load:
    """Closed-loop clients; every answer kept as (start, seconds, version or error)."""

    def __init__(self, port: int, clients: int, image: bytes) -> None:
        self.channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _ in range(clients)]
        self.request = matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=image))
        self.stopping = threading.Event()
        self.answers: list[tuple[float, float, str]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(c,), daemon=True)
                        for c in self.channels]

    def run(self, channel: grpc.Channel) -> None:
        stub = matid_pb2_grpc.ClassifierStub(channel)
        for _ in range(1_000_000):
            if self.stopping.is_set():
                return
            start = time.monotonic()
            try:
                outcome = stub.Classify(self.request, timeout=30).model.version
            except grpc.RpcError as error:
                outcome = f"error {error.code().name}"
            with self.lock:
                self.answers.append((start, time.monotonic() - start, outcome))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)
        for channel in self.channels:
            channel.close()

    def window(self, begin: float, end: float) -> dict:
        with self.lock:
            inside = [a for a in self.answers if begin <= a[0] < end]
        latencies = sorted(a[1] * 1000 for a in inside if not a[2].startswith("error"))
        failures = sum(1 for a in inside if a[2].startswith("error"))

        def percentile(p: float) -> Optional[float]:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None

        return {"requests": len(inside), "failures": failures,
                "images_per_second": len(latencies) / max(end - begin, 1e-9),
                "p50_ms": percentile(0.50), "p99_ms": percentile(0.99)}


def states(stub: matid_pb2_grpc.ClassifierStub) -> list[tuple[str, int]]:
    health = stub.Health(matid_pb2.HealthRequest(), timeout=5)
    return [(m.version, m.state) for m in health.models]


def one_round(tmp: str, variant: str, window: float, clients: int, image: bytes) -> dict:
    repo = os.path.join(tmp, f"repo-{variant}")
    repository.publish(MODEL, repo, "resnet18")
    flags = ["--int8"] if variant == "int8" else []
    log = os.path.join(tmp, f"server-{variant}.log")
    server = Process([os.path.join(BUILD_DIR, "bin", "matid-server"), f"--model_repository={repo}",
                      "--host=127.0.0.1", "--port=0", "--metrics_port=-1", "--threads=1",
                      "--inference_workers=2", *flags],
                     r"serving grpc_port=(\d+)", log)
    port = int(server.match.group(1))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = matid_pb2_grpc.ClassifierStub(channel)
    load = Load(port, clients, image)
    try:
        load.start()
        time.sleep(3)  # warm-up, not measured
        before_start = time.monotonic()
        time.sleep(window)
        version = repository.publish(MODEL, repo, "resnet18")
        swap_start = time.monotonic()
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: (str(version), AVAILABLE) in states(stub), 300, "the new version")
        serving_at = time.monotonic()
        wait_for(lambda: states(stub) == [(str(version), AVAILABLE)], 300,
                 "the old version's release")
        swap_end = time.monotonic()
        time.sleep(window)
        after_end = time.monotonic()
    finally:
        load.stop()
        channel.close()
        server.stop()
    logged = re.search(rf"version {version}: AVAILABLE .* after ([0-9.]+)(ms|s)", server.output())
    load_seconds = None
    if logged:
        load_seconds = float(logged.group(1)) / (1000 if logged.group(2) == "ms" else 1)
    versions_seen = [a[2] for a in sorted(load.answers)]
    went_back = any(int(b) < int(a) for a, b in zip(versions_seen, versions_seen[1:])
                    if not a.startswith("error") and not b.startswith("error"))
    return {
        "variant": variant,
        "before": load.window(before_start, swap_start),
        "during": load.window(swap_start, swap_end),
        "after": load.window(swap_end, after_end),
        "seconds_to_new_version_serving": serving_at - swap_start,
        "seconds_to_old_version_released": swap_end - swap_start,
        "server_logged_load_seconds": load_seconds,
        "failures_total": sum(1 for v in versions_seen if v.startswith("error")),
        "answers_in_start_order_went_back_a_version": went_back,
    }


def median_of(runs: list[dict], path: tuple[str, ...]) -> Optional[float]:
    values = []
    for run in runs:
        value = run
        for key in path:
            value = value[key]
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window_seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "model-swap.json"))
    args = parser.parse_args(argv)
    ensure_resnet18()
    rng = np.random.default_rng(0)
    image = cv2.imencode(".jpg", rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))[1].tobytes()
    runs: dict[str, list[dict]] = {"fp32": [], "int8": []}
    with tempfile.TemporaryDirectory(prefix="matid-swap-bench-") as tmp:
        for round_number in range(args.rounds):
            for variant in runs:
                work = os.path.join(tmp, f"round{round_number + 1}")
                os.makedirs(work, exist_ok=True)
                try:
                    run = one_round(work, variant, args.window_seconds, args.clients, image)
                except Exception:
                    with open(os.path.join(work, f"server-{variant}.log")) as f:
                        print(f"server log:\n{f.read()[-3000:]}", file=sys.stderr)
                    raise
                runs[variant].append(run)
                print(f"round {round_number + 1} {variant}: " + json.dumps(run), flush=True)
    summary = {}
    print(f"\n{'variant':8} {'window':7} {'p50 ms':>8} {'p99 ms':>8} {'img/s':>7} "
          f"{'failures':>8}")
    for variant, variant_runs in runs.items():
        summary[variant] = {
            window: {key: median_of(variant_runs, (window, key))
                     for key in ("p50_ms", "p99_ms", "images_per_second", "failures")}
            for window in ("before", "during", "after")}
        for key in ("seconds_to_new_version_serving", "seconds_to_old_version_released",
                    "server_logged_load_seconds"):
            summary[variant][key] = median_of(variant_runs, (key,))
        for window in ("before", "during", "after"):
            w = summary[variant][window]
            print(f"{variant:8} {window:7} {w['p50_ms']:8.1f} {w['p99_ms']:8.1f} "
                  f"{w['images_per_second']:7.1f} {w['failures']:8.0f}")
        print(f"{variant:8} SIGHUP -> new version serving "
              f"{summary[variant]['seconds_to_new_version_serving']:.2f} s, old released "
              f"{summary[variant]['seconds_to_old_version_released']:.2f} s, server load+warm-up "
              f"{summary[variant]['server_logged_load_seconds']} s")
    write_report(args.json, command="python3 -m bench.model_swap " + " ".join(argv or sys.argv[1:]),
                 clients=args.clients, window_seconds=args.window_seconds, summary=summary,
                 runs=runs)


if __name__ == "__main__":
    main()
