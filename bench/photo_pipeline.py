"""Benchmark (not a test): a plant's photos through model_export (issue 25).

    /usr/bin/python3 -m bench.photo_pipeline import [--photos 1000]
    /usr/bin/python3 -m bench.photo_pipeline train [--per_class 30] [--test_per_class 20]
    /usr/bin/python3 -m bench.photo_pipeline speed [--rounds 2]

import: writes N 4000x3000 colour JPEGs of synthetic parts
(tests/synthetic_parts.py), runs `model_export prepare` on them in a child
process and reports photos/s and the peak RSS of that process and of its
workers. train: six part kinds, N photos each at 4000x3000 (one station),
`model_export all --photo`, then the test folder's full-size photos through
matid-server: served accuracy and agreement with the offline model, and the
minutes it took. speed: training images/s of torchvision's ResNet-18, -34
and -50 at 224 px (photo augmentation from disk, bf16 where the CPU has
it), the second epoch of each, the three interleaved in rounds. Each prints
its figures and writes bench/results/photo-{import,train,speed}.json;
record them in bench/RESULTS.md.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(BUILD_DIR, "python"))

from bench.report import write_report  # noqa: E402
from tests import synthetic_parts  # noqa: E402


def model_export(*args: str) -> tuple:
    """Runs `python3 -m model_export ARGS` in a child; (stdout, seconds,
    peak RSS MiB of the child, peak RSS MiB of its largest worker)."""
    script = ("import resource, sys\n"
              "from model_export import cli\n"
              f"code = cli.main({list(args)!r})\n"
              "print('rss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,\n"
              "      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
              "sys.exit(code)\n")
    started = time.monotonic()
    done = subprocess.run(["/usr/bin/python3", "-c", script], cwd=ROOT, capture_output=True,
                          text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"model_export {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    own, workers = (int(v) // 1024 for v in done.stdout.split("rss ")[-1].split())
    return done.stdout, seconds, own, workers


def bench_import(photos: int) -> None:
    tmp = tempfile.mkdtemp(prefix="matid-bench-photos-")
    try:
        source = os.path.join(tmp, "photos")
        per_class = max(1, photos // len(synthetic_parts.KINDS))
        started = time.monotonic()
        synthetic_parts.write_parts_folder(source, synthetic_parts.KINDS, per_class, seed=21)
        made = time.monotonic() - started
        count = per_class * len(synthetic_parts.KINDS)
        megabytes = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(source)
                        for n in names) / 1e6
        out, seconds, own, workers = model_export("prepare", "--source", source,
                                                  "--work", os.path.join(tmp, "work"))
        figures = {"photos": count, "width": 4000, "height": 3000,
                   "megabytes": round(megabytes, 1), "generate_seconds": round(made, 1),
                   "prepare_seconds": round(seconds, 1),
                   "photos_per_second": round(count / seconds, 1),
                   "peak_rss_mib": own, "peak_worker_rss_mib": workers,
                   "prepare_line": [line for line in out.splitlines() if "imported" in line]}
        print(json.dumps(figures, indent=1))
        write_report(os.path.join(ROOT, "bench", "results", "photo-import.json"), **figures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def served_accuracy(out: str, test_source: str, labels: list) -> dict:
    """Classifies every full-size test photo through matid-server."""
    import grpc
    from matid.v1 import matid_pb2, matid_pb2_grpc
    from model_export import repository
    from tests.edge_harness import Process
    tmp = tempfile.mkdtemp(prefix="matid-bench-serve-")
    repo = os.path.join(tmp, "repository")
    repository.publish(out, repo, "parts")
    server = Process([os.path.join(BUILD_DIR, "bin", "matid-server"),
                      f"--model_repository={repo}", "--host=127.0.0.1", "--port=0",
                      "--metrics_port=-1"], r"serving grpc_port=(\d+)",
                     os.path.join(tmp, "server.log"))
    right = total = 0
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.match.group(1)}") as channel:
            stub = matid_pb2_grpc.ClassifierStub(channel)
            for label in sorted(os.listdir(test_source)):
                folder = os.path.join(test_source, label)
                for name in sorted(os.listdir(folder)):
                    with open(os.path.join(folder, name), "rb") as f:
                        answer = stub.Classify(matid_pb2.ClassifyRequest(
                            image=matid_pb2.Image(encoded=f.read())), timeout=60)
                    right += answer.predictions[0].label == label
                    total += 1
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"served_accuracy": round(right / total, 4), "served_photos": total}


def bench_train(per_class: int, test_per_class: int, extra: list) -> None:
    tmp = tempfile.mkdtemp(prefix="matid-bench-train-")
    try:
        source, test_source = os.path.join(tmp, "train"), os.path.join(tmp, "test")
        synthetic_parts.write_parts_folder(source, synthetic_parts.KINDS, per_class, seed=11)
        synthetic_parts.write_parts_folder(test_source, synthetic_parts.KINDS, test_per_class,
                                           seed=12)
        out = os.path.join(tmp, "model")
        log, seconds, own, _ = model_export(
            "all", "--photo", "--source", source, "--test_source", test_source,
            "--work", os.path.join(tmp, "work"), "--out", out, "--name", "parts", *extra)
        with open(os.path.join(out, "metadata.json")) as f:
            metadata = json.load(f)
        figures = {"classes": len(synthetic_parts.KINDS), "photos_per_class": per_class,
                   "test_photos_per_class": test_per_class, "extra_flags": extra,
                   "all_minutes": round(seconds / 60, 2), "peak_rss_mib": own,
                   "offline_accuracy": metadata["metrics"]["accuracy"],
                   "epoch_lines": [line for line in log.splitlines()
                                   if line.startswith(("epoch", "training stopped"))][-3:]}
        figures.update(served_accuracy(out, test_source, metadata["labels"]))
        print(json.dumps(figures, indent=1))
        write_report(os.path.join(ROOT, "bench", "results", "photo-train.json"), **figures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_speed(rounds: int) -> None:
    import csv
    import statistics
    tmp = tempfile.mkdtemp(prefix="matid-bench-speed-")
    try:
        source, work = os.path.join(tmp, "photos"), os.path.join(tmp, "work")
        synthetic_parts.write_parts_folder(source, synthetic_parts.KINDS, 16, 1600, 1200, seed=5)
        model_export("prepare", "--source", source, "--work", work, "--validation_fraction",
                     "0.1")
        rates = {depth: [] for depth in (18, 34, 50)}
        for _ in range(rounds):
            for depth in rates:
                model_export("train", "--photo", "--work", work, "--num_layers", str(depth),
                             "--image_shape", "3,224,224", "--epochs", "2", "--max_minutes", "0")
                with open(os.path.join(work, "checkpoints", "training_log.csv")) as f:
                    rates[depth].append(float(list(csv.DictReader(f))[-1]["images_per_second"]))
                print(f"ResNet-{depth}: {rates[depth][-1]} images/s", flush=True)
        with open(os.path.join(work, "manifests", "dataset.json")) as f:
            training_images = json.load(f)["counts"]["train"]
        figures = {"input": 224, "training_images": training_images, "batch": 16,
                   "rounds": rounds,
                   "images_per_second": {f"resnet{d}": {"median": statistics.median(r),
                                                         "runs": r} for d, r in rates.items()}}
        print(json.dumps(figures, indent=1))
        write_report(os.path.join(ROOT, "bench", "results", "photo-speed.json"), **figures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["import", "train", "speed"])
    parser.add_argument("--rounds", type=int, default=2, help="speed: interleaved rounds")
    parser.add_argument("--photos", type=int, default=1000, help="import: photos to import")
    parser.add_argument("--per_class", type=int, default=30, help="train: photos per part")
    parser.add_argument("--test_per_class", type=int, default=20, help="train: test photos per part")
    args, extra = parser.parse_known_args()
    if args.photos < 6 or args.per_class < 6 or args.test_per_class < 1:
        parser.error("--photos and --per_class need at least 6, --test_per_class 1")
    if args.mode == "import":
        bench_import(args.photos)
    elif args.mode == "speed":
        bench_speed(args.rounds)
    else:
        bench_train(args.per_class, args.test_per_class, extra)


if __name__ == "__main__":
    main()
