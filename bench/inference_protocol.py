#!/usr/bin/python3
"""Benchmark (not a test): the Open Inference Protocol's ModelInfer against
matid.v1 Classify on the same server, the same images and the same
closed-loop client (matid-bench's callback client; ModelInfer sends one
image as raw BYTES, as Triton's clients do, and gets the FP32
probabilities). Goal (issue 15): at most 5% more server CPU per image.

Two models: the Fashion-MNIST model (28x28 PNGs: per-call costs weigh the
most) and ResNet-18 int8 at 224x224 (JPEGs). For each, one server; rounds
alternate the two APIs (which goes first alternates too) at concurrency 1
and 8. Reported: medians over rounds of images/s, p50, p99 and server CPU
per image, and the median of the per-round ratios ModelInfer / Classify of
server CPU per image (pairs measured minutes apart drift less than runs).
Prints the figures and writes bench/results/inference-protocol.json.

With --pin the server runs on CPU 1 and the load generator on CPU 0
(taskset), so the client's work neither steals the server's core nor
evicts its caches: on a 2-vCPU machine that is what makes the per-image
CPU of the two APIs comparable to a few percent.

    /usr/bin/python3 -m bench.inference_protocol [--rounds 5] [--step_seconds 5]
        [--pin] [--models fashion-mnist,resnet18-int8]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
from typing import Optional

from bench.report import RESNET18, ensure_resnet18, write_report
from tests.edge_harness import Process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
OUT = os.path.join(ROOT, "out", "bench")
FMNIST_MODEL = os.path.join(ROOT, "models", "fashion-mnist")
FMNIST_IMAGES = os.path.join(OUT, "images-fmnist")
RESNET_MODEL = RESNET18
RESNET_IMAGES = os.path.join(OUT, "camera-resolution", "jpeg-224")
BOX_FLAGS = ["--threads=1", "--inference_workers=2"]  # docker-compose.yml's server


def prepare() -> None:
    """Builds what is missing: test images, the ResNet-18, the JPEGs."""
    def run(*args: str) -> None:
        subprocess.run(["/usr/bin/python3", "-m", *args], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    if not os.path.exists(os.path.join(FMNIST_MODEL, "metadata.json")):
        run("model_export", "all", "--quick", "--out", FMNIST_MODEL)
    if not os.path.isdir(FMNIST_IMAGES):
        run("model_export.fashion_mnist", "--split", "test", "--count", "1000",
            "--out", FMNIST_IMAGES)
    ensure_resnet18()
    if not os.path.isdir(RESNET_IMAGES):
        from bench import camera_resolution
        camera_resolution.make_inputs(60)


def pinned(cpu: Optional[int], command: list[str]) -> list[str]:
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


def bench(server: Process, images: str, tmp: str, mode: str, concurrency: int,
          seconds: float, cpu: Optional[int]) -> dict:
    report = os.path.join(tmp, f"bench-{mode}-{concurrency}.json")
    subprocess.run(pinned(cpu, [os.path.join(BIN, "matid-bench"), f"--server=127.0.0.1:{server.match.group(1)}",
                    f"--metrics_port={server.match.group(2)}",
                    f"--server_pid={server.process.pid}", f"--images={images}",
                    f"--mode={mode}", f"--concurrency={concurrency}",
                    f"--step_seconds={seconds}", f"--json={report}"]),
                   check=True, capture_output=True, timeout=600)
    with open(report) as f:
        step = json.load(f)["steps"][0]
    if step["errors"]:
        raise RuntimeError(f"{mode} c={concurrency}: errors {step['errors']}")
    return {key: step[key] for key in
            ("images_per_second", "p50_ms", "p99_ms", "server_cpu_ms_per_image")}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--step_seconds", type=float, default=5)
    parser.add_argument("--pin", action="store_true",
                        help="server on CPU 1, load generator on CPU 0")
    parser.add_argument("--models", default="fashion-mnist,resnet18-int8",
                        help="comma-separated: fashion-mnist, resnet18-int8")
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results",
                                                       "inference-protocol.json"))
    args = parser.parse_args(argv)
    prepare()
    models = {  # name: (model dir, images, server flags)
        "fashion-mnist": (FMNIST_MODEL, FMNIST_IMAGES, BOX_FLAGS),
        "resnet18-int8": (RESNET_MODEL, RESNET_IMAGES, ["--int8", *BOX_FLAGS]),
    }
    unknown = set(args.models.split(",")) - set(models)
    if unknown:
        parser.error(f"--models: unknown {sorted(unknown)}; known {sorted(models)}")
    models = {name: models[name] for name in args.models.split(",")}
    server_cpu, client_cpu = (1, 0) if args.pin else (None, None)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="matid-oip-bench-") as tmp:
        for name, (model, images, flags) in models.items():
            server = Process(pinned(server_cpu, [
                                 os.path.join(BIN, "matid-server"), f"--model_dir={model}",
                                 "--host=127.0.0.1", "--port=0", "--metrics_host=127.0.0.1",
                                 "--metrics_port=0", *flags]),
                             r"serving grpc_port=(\d+) metrics_port=(\d+)",
                             os.path.join(tmp, f"server-{name}.log"))
            runs: dict = {}
            try:
                for round_number in range(args.rounds):
                    modes = ["classify", "infer"] if round_number % 2 == 0 else ["infer", "classify"]
                    for concurrency in (1, 8):
                        for mode in modes:
                            figures = bench(server, images, tmp, mode, concurrency,
                                            args.step_seconds, client_cpu)
                            runs.setdefault(f"{mode}-c{concurrency}", []).append(figures)
                            print(f"{name} round {round_number + 1} {mode:8s} c={concurrency}: "
                                  + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()),
                                  flush=True)
            finally:
                server.stop()
            summary = {key: {k: round(statistics.median(r[k] for r in values), 3)
                             for k in values[0]} for key, values in runs.items()}
            for concurrency in (1, 8):
                ratios = [i["server_cpu_ms_per_image"] / c["server_cpu_ms_per_image"]
                          for i, c in zip(runs[f"infer-c{concurrency}"],
                                          runs[f"classify-c{concurrency}"])]
                summary[f"cpu_ratio_infer_over_classify_c{concurrency}"] = {
                    "median": round(statistics.median(ratios), 3),
                    "rounds": [round(r, 3) for r in ratios]}
            results[name] = summary
    print(json.dumps(results, indent=1))
    write_report(args.json, rounds=args.rounds, step_seconds=args.step_seconds,
                 pinned=args.pin, results=results)


if __name__ == "__main__":
    main()
