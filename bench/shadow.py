#!/usr/bin/python3
"""Benchmark (not a test): what a shadow version costs the serving one
(issue 14). ResNet-18 int8 (random weights) published twice into a model
repository; version 1 serves, version 2 shadows it on 0% (no shadow), 10%
and 100% of the images, set with matid-admin on the same running server.
Load (224x224 JPEGs): matid-bench open loop at --rate images/s (default
100, about 40% of what this box serves: moderate) and its closed-loop
callback client at 16 (overload: the shadow must be skipped). The fractions alternate in rounds (this machine drifts);
reported: medians of the primary's images/s, p50 and p99, and the shadow's
compared and skipped images from matid-admin shadow-report.
Prints the figures and writes bench/results/shadow.json.

    /usr/bin/python3 -m bench.shadow [--rounds 3] [--step_seconds 8]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
from typing import Optional

from bench.report import RESNET18, ensure_resnet18, write_report
from model_export import repository
from tests.edge_harness import Process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
MODEL = RESNET18
IMAGES = os.path.join(ROOT, "out", "bench", "camera-resolution", "jpeg-224")
FRACTIONS = (0.0, 0.1, 1.0)


def admin(port: str, *args: str) -> str:
    result = subprocess.run([os.path.join(BIN, "matid-admin"), f"--server=127.0.0.1:{port}", *args],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"matid-admin {' '.join(args)}: {result.stderr}")
    return result.stdout


def shadow_counts(port: str) -> tuple[int, int]:
    """(compared, skipped) so far, from matid-admin shadow-report."""
    shadow = json.loads(admin(port, "shadow-report", "parts"))
    return int(shadow["compared"]), sum(int(n) for n in shadow["skipped"].values())


def step(server: Process, tmp: str, load: str, seconds: float) -> dict:
    report = os.path.join(tmp, "bench.json")
    subprocess.run([os.path.join(BIN, "matid-bench"), f"--server=127.0.0.1:{server.match.group(1)}",
                    f"--metrics_port={server.match.group(2)}", f"--images={IMAGES}",
                    load, f"--step_seconds={seconds}",
                    f"--json={report}"], check=True, capture_output=True, timeout=600)
    with open(report) as f:
        figures = json.load(f)["steps"][0]
    return {key: figures[key] for key in ("images_per_second", "p50_ms", "p99_ms")}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step_seconds", type=float, default=8)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "shadow.json"))
    args = parser.parse_args(argv)
    ensure_resnet18()
    if not os.path.isdir(IMAGES):
        from bench import camera_resolution
        camera_resolution.make_inputs(60)
    runs: dict = {}
    with tempfile.TemporaryDirectory(prefix="matid-shadow-bench-") as tmp:
        repo = os.path.join(tmp, "repo")
        repository.publish(MODEL, repo, "parts")
        repository.publish(MODEL, repo, "parts")
        with open(os.path.join(repo, "parts", "version_policy.json"), "w") as f:
            f.write('{"policy": "specific", "versions": [1]}\n')
        server = Process([os.path.join(BIN, "matid-server"), f"--model_repository={repo}",
                          "--int8", "--threads=1", "--inference_workers=2", "--host=127.0.0.1",
                          "--port=0", "--metrics_host=127.0.0.1", "--metrics_port=0"],
                         r"serving grpc_port=(\d+) metrics_port=(\d+)",
                         os.path.join(tmp, "server.log"))
        port = server.match.group(1)
        try:
            for round_number in range(args.rounds):
                order = FRACTIONS[round_number % 3:] + FRACTIONS[:round_number % 3]
                for fraction in order:
                    if fraction == 0:
                        admin(port, "shadow", "parts", "off")
                    else:
                        admin(port, "shadow", "parts", "2", str(fraction))
                    for name, load in ((f"rate{args.rate:g}", f"--rate={args.rate}"),
                                       ("c16", "--concurrency=16")):
                        before = shadow_counts(port) if fraction > 0 else (0, 0)
                        figures = step(server, tmp, load, args.step_seconds)
                        if fraction > 0:
                            after = shadow_counts(port)
                            figures["shadow_compared"] = after[0] - before[0]
                            figures["shadow_skipped"] = after[1] - before[1]
                        key = f"shadow-{fraction:g}-{name}"
                        runs.setdefault(key, []).append(figures)
                        print(f"round {round_number + 1} {key}: {figures}", flush=True)
        finally:
            server.stop()
    summary = {key: {k: round(statistics.median(r[k] for r in values), 2) for k in values[0]}
               for key, values in runs.items()}
    print(json.dumps(summary, indent=1))
    write_report(args.json, model="ResNet-18 int8, 224x224 JPEG, --threads=1 --inference_workers=2",
                 rounds=args.rounds, step_seconds=args.step_seconds, results=summary)


if __name__ == "__main__":
    main()
