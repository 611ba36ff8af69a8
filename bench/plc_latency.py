#!/usr/bin/python3
"""Benchmark (not a test): trigger-to-result latency of matid-plc, as a PLC
sees it, against the model's own latency (issue 28).

One matid-server (--threads=1 --inference_workers=2, the box's flags) serves
the model (default: the benchmark ResNet-18 at 224x224, random weights). In
interleaved rounds (this machine's speed drifts), for the same 224x224 JPEG
frames:
  - model: a python3-grpcio client calls Classify, one at a time;
  - plc:   a pymodbus PLC writes a trigger and polls the result registers
           every 0.5 ms until the result sequence matches, acknowledges,
           and triggers again.
Per round and overall: p50 and p99 of both and the PLC's p99 minus the
model's p99 (target: at most 50 ms). Prints the figures and writes
bench/results/plc-latency.json.

    /usr/bin/python3 -m bench.plc_latency [--rounds 3] [--triggers 200] [--model DIR]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np
from pymodbus.client import ModbusTcpClient

from bench.report import ensure_resnet18, write_report
from tests.edge_harness import Mosquitto, Process, free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(BUILD_DIR, "python"))

import grpc  # noqa: E402
from matid.v1 import matid_pb2, matid_pb2_grpc  # noqa: E402

TRIGGER, ACK, RESULT_SEQ, STATUS = 20, 24, 3, 1


def percentile(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_frames(folder: str, count: int = 32) -> list[bytes]:
    os.makedirs(folder)
    rng = np.random.default_rng(7)
    frames = []
    for i in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), (9, 9), 3)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        with open(os.path.join(folder, f"frame_{i:03d}.jpg"), "wb") as f:
            f.write(jpeg.tobytes())
        frames.append(jpeg.tobytes())
    return frames


def model_round(stub: matid_pb2_grpc.ClassifierStub, frames: list[bytes], count: int) -> list[float]:
    times = []
    for i in range(count):
        request = matid_pb2.ClassifyRequest(image=matid_pb2.Image(encoded=frames[i % len(frames)]),
                                            top_k=3)
        start = time.perf_counter()
        stub.Classify(request, timeout=10)
        times.append((time.perf_counter() - start) * 1000)
    return times


def plc_round(plc: ModbusTcpClient, first_seq: int, count: int) -> list[float]:
    times = []
    for seq in range(first_seq, first_seq + count):
        start = time.perf_counter()
        plc.write_register(TRIGGER, seq, slave=1)
        while True:
            registers = plc.read_holding_registers(0, 25, slave=1).registers
            if registers[RESULT_SEQ] == seq and registers[STATUS] == 1:
                break
            time.sleep(0.0005)
        times.append((time.perf_counter() - start) * 1000)
        plc.write_register(ACK, seq, slave=1)
    return times


def summary(times: list[float]) -> dict:
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(percentile(times, 0.99), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--triggers", type=int, default=200, help="per round and side")
    parser.add_argument("--model", default="", help="model directory (default: ResNet-18 224)")
    args = parser.parse_args()
    model = args.model or ensure_resnet18()
    tmp = tempfile.mkdtemp(prefix="matid-plc-bench-")
    stops = []
    try:
        frames = make_frames(os.path.join(tmp, "frames"))
        broker = Mosquitto(tmp, "broker")
        broker.start()
        stops.append(broker.stop)
        port = free_port()
        server = Process([os.path.join(BUILD_DIR, "bin", "matid-server"), f"--model_dir={model}",
                          "--host=127.0.0.1", f"--port={port}", "--metrics_port=-1",
                          "--threads=1", "--inference_workers=2"],
                         r"serving grpc_port=", os.path.join(tmp, "server.log"))
        stops.append(server.stop)
        modbus_port = free_port()
        station = Process([os.path.join(BUILD_DIR, "bin", "matid-plc"),
                           f"--source={os.path.join(tmp, 'frames')}", "--loop",
                           f"--server=127.0.0.1:{port}", f"--modbus_port={modbus_port}",
                           f"--mqtt_port={broker.port}", "--accepted_classes=0",
                           "--metrics_port=-1"],
                          r"matid-plc: modbus://", os.path.join(tmp, "plc.log"))
        stops.append(station.stop)
        stub = matid_pb2_grpc.ClassifierStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        plc = ModbusTcpClient("127.0.0.1", port=modbus_port, timeout=5)
        assert plc.connect()
        wait_for(lambda: plc.read_holding_registers(0, 25, slave=1).registers[STATUS] == 1, 10,
                 "the box to be ready")
        model_round(stub, frames, 20)  # warm-up both paths
        plc_round(plc, 1, 20)
        seq, rounds, all_model, all_plc = 21, [], [], []
        for r in range(args.rounds):
            model_times = model_round(stub, frames, args.triggers)
            plc_times = plc_round(plc, seq, args.triggers)
            seq += args.triggers
            all_model += model_times
            all_plc += plc_times
            row = {"model": summary(model_times), "plc": summary(plc_times)}
            row["p99_over_model_ms"] = round(row["plc"]["p99_ms"] - row["model"]["p99_ms"], 2)
            rounds.append(row)
            print(f"round {r + 1}: model p50 {row['model']['p50_ms']} p99 {row['model']['p99_ms']} "
                  f"ms; plc p50 {row['plc']['p50_ms']} p99 {row['plc']['p99_ms']} ms; "
                  f"p99 over model {row['p99_over_model_ms']} ms", flush=True)
        plc.close()
        overall = {"model": summary(all_model), "plc": summary(all_plc)}
        overall["p99_over_model_ms"] = round(overall["plc"]["p99_ms"] - overall["model"]["p99_ms"], 2)
        overall["p50_over_model_ms"] = round(overall["plc"]["p50_ms"] - overall["model"]["p50_ms"], 2)
        print(f"overall: model p50 {overall['model']['p50_ms']} p99 {overall['model']['p99_ms']} ms; "
              f"plc p50 {overall['plc']['p50_ms']} p99 {overall['plc']['p99_ms']} ms; p99 over "
              f"model {overall['p99_over_model_ms']} ms (target <= 50)")
        write_report(os.path.join(ROOT, "bench", "results", "plc-latency.json"),
                     model=os.path.basename(model.rstrip("/")), triggers_per_round=args.triggers,
                     rounds=rounds, overall=overall, target_p99_over_model_ms=50)
        return 0
    finally:
        for stop in reversed(stops):
            stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
