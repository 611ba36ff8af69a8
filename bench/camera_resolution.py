#!/usr/bin/python3
"""Benchmark (not a test): camera-resolution frames (issue 12), before and
after the camera shrinks frames and the server decodes large JPEGs at
reduced scale. ResNet-18 at 224x224 (random weights), 2 vCPU.

1. Server alone: matid-bench at concurrency 8 (and 1, for latency) on a
   folder of 1920x1080 JPEGs (q90, a Fashion-MNIST part on a textured
   background) and on the same pictures at 224x224, with
   --reduced_jpeg_decode off and on, with the server's default threads and
   (c=8) with docker-compose.yml's two single-thread workers. Images/s, p50
   and server CPU per image.
2. Whole box: a 1080p MJPEG video through matid-camera (default flags),
   matid-server and mosquitto, until every result reached the broker:
   frames/s over the whole run and in steady state (first result to last),
   camera and server CPU per frame. Whole frames decoded whole by the server
   (--shrink_frames=false --reduced_jpeg_decode=false, the issue's "before";
   the camera still decodes MJPEG packets itself, at full size) against
   shrunk frames (the defaults), with the server's default threads and with
   docker-compose.yml's two single-thread workers.

Configurations alternate in rounds (this machine's speed drifts by tens of
percent within minutes); medians of the rounds are reported. Prints the
figures and writes bench/results/camera-resolution.json.

    /usr/bin/python3 -m bench.camera_resolution [--rounds 3] [--frames 300]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import tempfile
import time
from typing import Optional

import cv2
import numpy as np

from model_export import fashion_mnist
from tests.edge_harness import Collector, Mosquitto, Process, wait_for
from scripts import machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
OUT = os.path.join(ROOT, "out", "bench", "camera-resolution")
MODEL = os.path.join(ROOT, "out", "bench", "resnet18")


def camera_picture(part: np.ndarray, seed: int) -> np.ndarray:
    """A 1920x1080 BGR frame: a smooth textured belt with a Fashion-MNIST
    part (28x28, upscaled) in the middle, as a line camera might see it."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (135, 240, 3)).astype(np.float32)
    texture = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 2), (1920, 1080),
                         interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(60, 140, 1920, dtype=np.float32)[None, :, None]
    frame = np.clip(ramp + 25 * texture, 0, 255)
    big = cv2.resize(part, (900, 900), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    tint = np.array([0.8, 0.9, 1.0], dtype=np.float32)
    region = frame[90:990, 510:1410]
    mask = (big / 255.0)[:, :, None]
    frame[90:990, 510:1410] = region * (1 - mask) + big[:, :, None] * tint * mask
    return frame.astype(np.uint8)


def make_inputs(frames: int) -> dict:
    """JPEG folders (1080p and 224x224) and a 1080p MJPEG video, cached."""
    paths = {"jpeg-1080": os.path.join(OUT, "jpeg-1080"), "jpeg-224": os.path.join(OUT, "jpeg-224"),
             "video": os.path.join(OUT, f"video-1080-{frames}.avi")}
    images, _ = fashion_mnist.load("test")
    if not os.path.isdir(paths["jpeg-224"]):
        os.makedirs(paths["jpeg-1080"], exist_ok=True)
        os.makedirs(paths["jpeg-224"], exist_ok=True)
        for i in range(48):
            frame = camera_picture(images[i], i)
            cv2.imwrite(os.path.join(paths["jpeg-1080"], f"{i:03d}.jpg"), frame,
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            small = cv2.resize(frame, (224, 224), interpolation=cv2.INTER_AREA)
            cv2.imwrite(os.path.join(paths["jpeg-224"], f"{i:03d}.jpg"), small,
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not os.path.exists(paths["video"]):
        writer = cv2.VideoWriter(paths["video"] + ".tmp.avi", cv2.VideoWriter_fourcc(*"MJPG"), 30,
                                 (1920, 1080))
        for i in range(frames):
            writer.write(camera_picture(images[i], 1000 + i))
        writer.release()
        os.rename(paths["video"] + ".tmp.avi", paths["video"])
    return paths


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh_name(tmp: str, name: str) -> str:
    """`name` with a number not used yet in `tmp` (logs are appended to)."""
    number = 1
    while os.path.exists(os.path.join(tmp, f"{name}-{number}.log")):
        number += 1
    return f"{name}-{number}"


def start_server(tmp: str, name: str, *flags: str) -> Process:
    return Process([os.path.join(BIN, "matid-server"), f"--model_dir={MODEL}", "--host=127.0.0.1",
                    "--port=0", "--metrics_host=127.0.0.1", "--metrics_port=0", *flags],
                   r"serving grpc_port=(\d+) metrics_port=(\d+)",
                   os.path.join(tmp, fresh_name(tmp, f"server-{name}") + ".log"))


def served(tmp: str, name: str, images: str, concurrency: int, seconds: float,
           server_flags: list[str]) -> dict:
    server = start_server(tmp, name, *server_flags)
    report = os.path.join(tmp, f"bench-{name}.json")
    try:
        subprocess.run([os.path.join(BIN, "matid-bench"),
                        f"--server=127.0.0.1:{server.match.group(1)}",
                        f"--metrics_port={server.match.group(2)}",
                        f"--server_pid={server.process.pid}", f"--images={images}",
                        f"--concurrency={concurrency}", f"--step_seconds={seconds}",
                        f"--json={report}"], check=True, capture_output=True, timeout=600)
    finally:
        server.stop()
    with open(report) as f:
        step = json.load(f)["steps"][0]
    return {"images_per_second": step["images_per_second"], "p50_ms": step["p50_ms"],
            "server_cpu_ms_per_image": step["server_cpu_ms_per_image"]}


def whole_box(tmp: str, name: str, video: str, frames: int, server_flags: list[str],
              camera_flags: list[str]) -> dict:
    broker = Mosquitto(tmp, fresh_name(tmp, f"broker-{name}"))
    collector = Collector(broker.port)
    server = start_server(tmp, name, *server_flags)
    try:
        server_cpu = cpu_seconds(server.process.pid)
        started = time.monotonic()
        log_path = os.path.join(tmp, fresh_name(tmp, f"camera-{name}") + ".log")
        with open(log_path, "w") as log:
            camera = subprocess.Popen(
                [os.path.join(BIN, "matid-camera"), f"--source={video}",
                 f"--camera_id=bench-{name}", f"--server=127.0.0.1:{server.match.group(1)}",
                 f"--mqtt_port={broker.port}", "--metrics_port=-1", f"--max_pending={frames}",
                 *camera_flags], stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(camera.pid, 0)
        camera.returncode = os.waitstatus_to_exitcode(status)
        if camera.returncode != 0:
            with open(log_path) as log:
                raise RuntimeError(f"matid-camera failed: {log.read()}")
        wait_for(lambda: len(set(collector.seen())) >= frames, 120, "every result at the broker")
        seconds = time.monotonic() - started
        server_cpu = cpu_seconds(server.process.pid) - server_cpu
        with collector.lock:
            arrivals = sorted(collector.arrival_times)
    finally:
        collector.close()
        server.stop()
        broker.stop()
    # Whole run (program start, MQTT drain) and steady state (first result
    # to last: what a camera that runs for hours sees).
    steady = (len(arrivals) - 1) / max(1e-9, arrivals[-1] - arrivals[0])
    return {"frames_per_second": round(frames / seconds, 1),
            "steady_frames_per_second": round(steady, 1),
            "camera_cpu_ms_per_frame": round(1000 * (usage.ru_utime + usage.ru_stime) / frames, 2),
            "server_cpu_ms_per_frame": round(1000 * server_cpu / frames, 2)}


def medians(runs: list[dict]) -> dict:
    return {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--step_seconds", type=float, default=5)
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results",
                                                       "camera-resolution.json"))
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(MODEL, "metadata.json")):
        subprocess.run(["/usr/bin/python3", "-m", "model_export.make_resnet18", "--out", MODEL],
                       cwd=ROOT, check=True)
    inputs = make_inputs(args.frames)
    box_default = ["--threads=1", "--inference_workers=2"]  # docker-compose.yml's server
    server_configs = {  # name: (images, concurrency, server flags)
        "224-c8": (inputs["jpeg-224"], 8, ["--int8"]),
        "224-c8-t1w2": (inputs["jpeg-224"], 8, ["--int8", *box_default]),
        "1080-reduced-c8-t1w2": (inputs["jpeg-1080"], 8,
                                 ["--int8", "--reduced_jpeg_decode", *box_default]),
        "1080-full-c8": (inputs["jpeg-1080"], 8, ["--int8", "--reduced_jpeg_decode=false"]),
        "1080-reduced-c8": (inputs["jpeg-1080"], 8, ["--int8", "--reduced_jpeg_decode"]),
        "224-c1": (inputs["jpeg-224"], 1, ["--int8"]),
        "1080-full-c1": (inputs["jpeg-1080"], 1, ["--int8", "--reduced_jpeg_decode=false"]),
        "1080-reduced-c1": (inputs["jpeg-1080"], 1, ["--int8", "--reduced_jpeg_decode"]),
    }
    box_configs = {  # name: (server flags, camera flags)
        "int8-whole-frames": (["--int8", "--reduced_jpeg_decode=false"], ["--shrink_frames=false"]),
        "int8-shrunk-t2": (["--int8"], []),
        "int8-shrunk-t1w2": (["--int8", *box_default], []),
        "fp32-whole-frames": (["--reduced_jpeg_decode=false"], ["--shrink_frames=false"]),
        "fp32-shrunk-t1w2": (box_default, []),
    }
    runs: dict = {name: [] for name in list(server_configs) + list(box_configs)}
    with tempfile.TemporaryDirectory(prefix="matid-camres-") as tmp:
        for round_index in range(args.rounds):
            for name, (images, concurrency, flags) in server_configs.items():
                runs[name].append(served(tmp, name, images, concurrency, args.step_seconds, flags))
                print(f"round {round_index + 1} server {name}: {runs[name][-1]}", flush=True)
            for name, (server_flags, camera_flags) in box_configs.items():
                runs[name].append(whole_box(tmp, name, inputs["video"], args.frames, server_flags,
                                            camera_flags))
                print(f"round {round_index + 1} box {name}: {runs[name][-1]}", flush=True)
    summary = {name: medians(found) for name, found in runs.items()}
    s = summary
    ratios = {
        "server_1080_reduced_over_224": round(s["1080-reduced-c8"]["images_per_second"]
                                              / s["224-c8"]["images_per_second"], 3),
        "server_1080_reduced_over_224_t1w2": round(
            s["1080-reduced-c8-t1w2"]["images_per_second"]
            / s["224-c8-t1w2"]["images_per_second"], 3),
        "server_1080_full_over_224": round(s["1080-full-c8"]["images_per_second"]
                                           / s["224-c8"]["images_per_second"], 3),
        "c1_p50_1080_reduced_minus_224_ms": round(s["1080-reduced-c1"]["p50_ms"]
                                                  - s["224-c1"]["p50_ms"], 2),
        "c1_p50_1080_full_minus_224_ms": round(s["1080-full-c1"]["p50_ms"]
                                               - s["224-c1"]["p50_ms"], 2),
        "box_int8_shrunk_over_whole_frames": round(s["int8-shrunk-t1w2"]["frames_per_second"]
                                                   / s["int8-whole-frames"]["frames_per_second"], 2),
        "box_fp32_shrunk_over_whole_frames": round(s["fp32-shrunk-t1w2"]["frames_per_second"]
                                                   / s["fp32-whole-frames"]["frames_per_second"], 2),
    }
    print(json.dumps({"medians": summary, "ratios": ratios}, indent=1))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "machine": machine.describe(), "rounds": args.rounds,
                   "frames": args.frames, "runs": runs, "medians": summary, "ratios": ratios}, f,
                  indent=1)


if __name__ == "__main__":
    main()
