#!/usr/bin/python3
"""The edge box demo: a conveyor video of Fashion-MNIST parts with known
classes -> matid-camera -> matid-server -> local mosquitto -> matid-bridge ->
a second mosquitto with mutual TLS standing in for AWS IoT Core, watched by
Prometheus when it is installed. Shows live progress and a summary, then
stops everything (Ctrl-C too). Run by scripts/demo.sh after the build.

    /usr/bin/python3 -m scripts.edge_demo --model_dir models/fashion-mnist [--frames 600]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from model_export import debian_python  # noqa: E402

debian_python.ensure()

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from model_export import fashion_mnist  # noqa: E402
from tests.edge_harness import (Collector, Mosquitto, Process, free_port, make_certificates,  # noqa: E402
                          port_is_free, wait_for)

BIN = os.environ.get("MATID_BIN_DIR", os.path.join(ROOT, "build", "bin"))


def pick(port: int) -> int:
    return port if port_is_free(port) else free_port()


def make_conveyor(path: str, frames: int, size: int = 112, seed: int = 3) -> list:
    """Parts from the Fashion-MNIST test set, one per frame, centred on a dark
    belt with a little sensor noise. Returns the true label of every frame."""
    images, labels = fashion_mnist.load("test")
    rng = np.random.default_rng(seed)
    order = rng.choice(len(images), size=frames, replace=False)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 20, (size, size))
    for index in order:
        part = cv2.resize(images[index], (size, size), interpolation=cv2.INTER_LINEAR)
        noise = rng.normal(0, 2.0, part.shape)
        frame = np.clip(part.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return [fashion_mnist.LABELS[labels[i]] for i in order]


def scrape(port: int) -> dict:
    values = {}
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return values
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    return values


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", default=os.path.join(ROOT, "models", "fashion-mnist"))
    parser.add_argument("--frames", type=int, default=int(os.environ.get("MATID_DEMO_FRAMES", 600)))
    parser.add_argument("--fps", type=float, default=20.0, help="conveyor speed, frames per second")
    parser.add_argument("--out", default=os.path.join(ROOT, "out", "demo"))
    parser.add_argument("--keep_running", action="store_true",
                        help="after the summary, keep the box running (URLs answer) until Ctrl-C")
    args = parser.parse_args()

    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    print(f"demo: making a conveyor video of {args.frames} parts ({out}/conveyor.avi)")
    truth = make_conveyor(os.path.join(out, "conveyor.avi"), args.frames)
    os.makedirs(os.path.join(out, "certs"))
    certs = make_certificates(os.path.join(out, "certs"))

    running = []

    def start(thing):
        running.append(thing)
        return thing

    ports = {"grpc": pick(50051), "server_metrics": pick(8080), "camera_metrics": pick(8081),
             "bridge_metrics": pick(8082), "mqtt": pick(1883), "prometheus": pick(9090)}

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        local = start(Mosquitto(out, "mosquitto-local", port=ports["mqtt"]))
        cloud = start(Mosquitto(out, "mosquitto-cloud", certs))
        print(f"demo: local MQTT broker 127.0.0.1:{local.port}; 'AWS IoT Core' stand-in "
              f"127.0.0.1:{cloud.port} (mutual TLS)")
        server = start(Process(
            [os.path.join(BIN, "matid-server"), f"--model_dir={args.model_dir}", "--host=127.0.0.1",
             f"--port={ports['grpc']}", "--metrics_host=127.0.0.1",
             f"--metrics_port={ports['server_metrics']}", "--threads=1", "--inference_workers=2"],
            r"serving grpc_port=(\d+)", os.path.join(out, "server.log")))
        bridge = start(Process(
            [os.path.join(BIN, "matid-bridge"), f"--local_port={local.port}",
             "--cloud_endpoint=127.0.0.1", f"--cloud_port={cloud.port}",
             f"--cloud_ca={certs['ca.crt']}", f"--cloud_cert={certs['client.crt']}",
             f"--cloud_key={certs['client.key']}", "--cloud_client_id=matid-edge-demo",
             f"--spool_path={os.path.join(out, 'spool.db')}", "--metrics_host=127.0.0.1",
             f"--metrics_port={ports['bridge_metrics']}"],
            r"metrics_port=(-?\d+)", os.path.join(out, "bridge.log")))
        prometheus_url = None
        if shutil.which("prometheus"):
            config = os.path.join(out, "prometheus.yml")
            with open(config, "w") as f:
                f.write(f"""global: {{scrape_interval: 2s, evaluation_interval: 2s}}
rule_files: ["{ROOT}/deploy/prometheus/alerts.yml", "{ROOT}/deploy/prometheus/rules.yml"]
scrape_configs:
  - {{job_name: matid-server, static_configs: [{{targets: ["127.0.0.1:{ports['server_metrics']}"]}}]}}
  - {{job_name: matid-camera, static_configs: [{{targets: ["127.0.0.1:{ports['camera_metrics']}"]}}]}}
  - {{job_name: matid-bridge, static_configs: [{{targets: ["127.0.0.1:{ports['bridge_metrics']}"]}}]}}
""")
            start(Process(["prometheus", f"--config.file={config}",
                           f"--storage.tsdb.path={os.path.join(out, 'prometheus-data')}",
                           f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
                          r"Server is ready to receive web requests", os.path.join(out, "prometheus.log")))
            prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"
            print(f"demo: Prometheus at {prometheus_url}")
        else:
            print("demo: prometheus is not installed; skipping it")
        results = start(Collector(local.port, client_id="demo-watcher"))
        delivered = start(Collector(cloud.port, certs, client_id="demo-cloud-watcher"))

        camera_log = open(os.path.join(out, "camera.log"), "w")
        camera = subprocess.Popen(
            [os.path.join(BIN, "matid-camera"), f"--source={os.path.join(out, 'conveyor.avi')}",
             "--camera_id=conveyor-1", f"--server=127.0.0.1:{server.match.group(1)}",
             f"--mqtt_port={local.port}", f"--pace_fps={args.fps}", "--metrics_host=127.0.0.1",
             f"--metrics_port={ports['camera_metrics']}", f"--inspection_dir={os.path.join(out, 'inspect')}"],
            stdout=camera_log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        print("demo: conveyor running: camera -> server -> MQTT -> bridge -> cloud")
        live = sys.stdout.isatty()  # one updating line on a terminal, a line every 5 s otherwise
        ticks = 0
        while camera.poll() is None:
            time.sleep(1.0)
            ticks += 1
            if not live and ticks % 5:
                continue
            payloads = list(results.payloads)
            correct = sum(1 for p in payloads if p["top_label"] == truth[p["frame_seq"]])
            latencies = [p["latency_ms"] for p in payloads]
            bridge_metrics = scrape(ports["bridge_metrics"])
            elapsed = time.monotonic() - started
            print(f"{chr(13) if live else ''}  {len(payloads):4d}/{args.frames} frames  {len(payloads) / elapsed:5.1f} fps  "
                  f"accuracy {correct / max(1, len(payloads)):.3f}  latency p50 "
                  f"{percentile(latencies, 50):5.1f} ms p99 {percentile(latencies, 99):5.1f} ms  "
                  f"bridge backlog {int(bridge_metrics.get('matid_bridge_backlog_messages', 0)):4d}  "
                  f"at cloud {len(set(delivered.seen())):4d}", end="" if live else "\n", flush=True)
        print()
        camera_log.close()
        wait_for(lambda: len(set(delivered.seen())) >= len(results.payloads), 30,
                 "the bridge to deliver everything")
        payloads = list(results.payloads)
        with open(os.path.join(out, "results.jsonl"), "w") as f:
            for p in payloads:
                f.write(json.dumps(p) + "\n")
        correct = sum(1 for p in payloads if p["top_label"] == truth[p["frame_seq"]])
        latencies = [p["latency_ms"] for p in payloads]
        inspection = sum(1 for p in payloads if p["needs_inspection"])
        server_metrics = scrape(ports["server_metrics"])
        print("demo: summary")
        print(f"  frames classified   {len(payloads)} of {args.frames} "
              f"(camera exit code {camera.returncode})")
        print(f"  accuracy            {correct / max(1, len(payloads)):.4f} against the known parts")
        print(f"  latency             p50 {percentile(latencies, 50):.1f} ms, p99 "
              f"{percentile(latencies, 99):.1f} ms (capture -> result)")
        print(f"  needs inspection    {inspection} results under the threshold "
              f"(frames saved in {out}/inspect)")
        print(f"  delivered to cloud  {len(set(delivered.seen()))} distinct messages "
              f"({len(delivered.seen())} with duplicates)")
        print(f"  server batches      {int(server_metrics.get('matid_batches_total', 0))} forward passes")
        print("  where to look:")
        print(f"    server metrics    http://127.0.0.1:{ports['server_metrics']}/metrics")
        print(f"    camera metrics    http://127.0.0.1:{ports['camera_metrics']}/metrics")
        print(f"    bridge metrics    http://127.0.0.1:{ports['bridge_metrics']}/metrics")
        if prometheus_url:
            print(f"    Prometheus        {prometheus_url}/graph?g0.expr=label%3Amatid_predictions%3Arate5m")
        print(f"    results           {out}/results.jsonl, logs in {out}/*.log")
        ok = camera.returncode == 0 and len(payloads) == args.frames
        if not args.keep_running:
            print("  (everything stops now; run again to watch it live, or with --keep_running)")
            return 0 if ok else 1
        print("demo: the box keeps running (server, bridge, brokers, Prometheus); Ctrl-C stops it",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\ndemo: stopping")
            return 0 if ok else 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted")
        return 130
    finally:
        if "camera" in locals() and camera.poll() is None:
            camera.send_signal(signal.SIGTERM)
            camera.wait(timeout=30)
        for thing in reversed(running):
            try:
                thing.stop() if hasattr(thing, "stop") else thing.close()
            except Exception:  # noqa: BLE001 - stop everything we can
                pass


if __name__ == "__main__":
    sys.exit(main())
