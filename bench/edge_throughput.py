#!/usr/bin/python3
"""Benchmark (not a test): throughput of the edge pipeline on this machine.

1. camera: matid-camera reads N Fashion-MNIST test images from a folder as
   fast as it can, through matid-server (tiny test model, or --model_dir)
   to a local mosquitto; frames/s = N / wall time from first frame to the
   last result acknowledged by the broker.
2. bridge: 10,000 messages wait in the local broker for the bridge's
   persistent session; the bridge starts and drains them over mutual TLS
   to a second mosquitto; messages/s = 10,000 / drain time.

Prints figures and writes bench/results/edge-throughput.json.
    /usr/bin/python3 -m bench.edge_throughput [--frames 2000] [--messages 10000]
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from model_export import fashion_mnist  # noqa: E402
from tests.edge_harness import (Collector, Mosquitto, Process, make_certificates,  # noqa: E402
                          result_message, wait_for)
from scripts import machine  # noqa: E402

BIN = os.path.join(ROOT, "build", "bin")


def camera_throughput(tmp: str, frames: int, model_dir: str) -> dict:
    images = os.path.join(tmp, "images")
    fashion_mnist.write_pngs("test", images, count=frames)
    local = Mosquitto(tmp, "camera-local")
    collector = Collector(local.port)
    server = Process([os.path.join(BIN, "matid-server"), f"--model_dir={model_dir}",
                      "--host=127.0.0.1", "--port=0", "--metrics_port=-1"],
                     r"serving grpc_port=(\d+)", os.path.join(tmp, "server.log"))
    try:
        started = time.monotonic()
        subprocess.run([os.path.join(BIN, "matid-camera"), f"--source={images}",
                        "--camera_id=bench", f"--server=127.0.0.1:{server.match.group(1)}",
                        f"--mqtt_port={local.port}", "--metrics_port=-1",
                        f"--max_pending={frames}", "--max_in_flight=8"],
                       check=True, capture_output=True, timeout=600)
        wait_for(lambda: len(collector.seen()) >= frames, 60, "all camera results")
        seconds = time.monotonic() - started
    finally:
        collector.close()
        server.stop()
        local.stop()
    return {"frames": frames, "seconds": round(seconds, 2), "frames_per_second": round(frames / seconds, 1)}


def bridge_drain(tmp: str, messages: int) -> dict:
    certs = make_certificates(tmp)
    local = Mosquitto(tmp, "bridge-local")
    cloud = Mosquitto(tmp, "bridge-cloud", certs)
    collector = Collector(cloud.port, certs)
    bridge_args = [os.path.join(BIN, "matid-bridge"), "--local_port", str(local.port),
                   "--cloud_endpoint", "127.0.0.1", "--cloud_port", str(cloud.port),
                   "--cloud_ca", certs["ca.crt"], "--cloud_cert", certs["client.crt"],
                   "--cloud_key", certs["client.key"], "--spool_path",
                   os.path.join(tmp, "spool.db"), "--metrics_port", "-1"]
    # A first run registers the bridge's persistent session, then it goes away.
    bridge = Process(bridge_args, r"metrics_port", os.path.join(tmp, "bridge1.log"))
    time.sleep(1.0)
    bridge.stop()
    publisher = Collector(local.port, client_id="bench-publisher", subscribe=False)
    for seq in range(messages):
        publisher.client.publish("matid/bench/results", result_message("bench", seq), qos=1)
    time.sleep(2.0)  # let the broker take them all
    publisher.close()
    try:
        started = time.monotonic()
        bridge = Process(bridge_args, r"metrics_port", os.path.join(tmp, "bridge2.log"))
        wait_for(lambda: len(set(collector.seen())) >= messages, 600, "the backlog at the cloud",
                 interval=0.02)
        seconds = time.monotonic() - started
        bridge.stop()
    finally:
        collector.close()
        cloud.stop()
        local.stop()
    return {"messages": messages, "seconds": round(seconds, 2),
            "messages_per_second": round(messages / seconds, 1), "tls": True,
            "spool_sync": "full"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--model_dir", default=os.path.join(ROOT, "build", "test_model"))
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="matid-bench-edge-")
    try:
        result = {
            "date": datetime.date.today().isoformat(),
            "machine": machine.describe(),
            "model": args.model_dir,
            "camera": camera_throughput(tmp, args.frames, args.model_dir),
            "bridge_drain": bridge_drain(tmp, args.messages),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(ROOT, "bench", "results", "edge-throughput.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
