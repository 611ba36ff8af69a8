#!/usr/bin/python3
"""Benchmark-side measurement (not a test): does decoding camera-resolution
JPEGs at reduced scale (matid-server --reduced_jpeg_decode) change what the
model says? Issue 12's acceptance: top-1 agreement between served and
offline predictions >= 99.5%, accuracy within 0.2 points.

The Fashion-MNIST test set (all 10,000 images, or --count) is upscaled into
1920x1080 frames (stretched, as the model's metadata says; JPEG q90) and
classified by the trained model through matid-server, once with full
decoding and once with reduced decoding. Offline predictions are the same
TorchScript model run in PyTorch on the same frames preprocessed by the
reference preprocessing (tests/reference_preprocess.py: full decode, the
model's fit; what the training pipeline's evaluation computes for a frame).
For context it also runs the model on the original 28x28 images: the
upscale/JPEG/downscale round trip moves some answers whatever the server
does. Prints the figures and writes bench/results/reduced-decode-agreement.json.

    /usr/bin/python3 -m bench.reduced_decode_agreement [--model_dir models/fashion-mnist]
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import sys
import tempfile
from typing import Optional

import cv2
import grpc
import numpy as np
import torch

from model_export import fashion_mnist
from tests import reference_preprocess
from tests.edge_harness import Process
from scripts import machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")


def offline_predictions(model_dir: str, tensors: np.ndarray) -> np.ndarray:
    """Top-1 of the model run in PyTorch on preprocessed inputs (N, C, H, W)."""
    model = torch.jit.load(os.path.join(model_dir, "model.pt")).eval()
    predictions = []
    with torch.no_grad():
        for start in range(0, len(tensors), 500):
            batch = torch.from_numpy(tensors[start:start + 500])
            predictions.append(model(batch).argmax(dim=1).numpy())
    return np.concatenate(predictions)


def originals_as_input(images: np.ndarray, spec: dict) -> np.ndarray:
    x = (images.astype(np.float32) / 255.0 - spec["mean"][0]) / spec["std"][0]
    return x[:, None, :, :]


def frames_as_input(frames: list[bytes], spec: dict) -> np.ndarray:
    """The reference preprocessing of each encoded frame (full decode)."""
    def one(jpeg: bytes) -> np.ndarray:
        return reference_preprocess.preprocess_encoded(np.frombuffer(jpeg, np.uint8), spec)

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        return np.stack(list(pool.map(one, frames)))


def frame_jpeg(image: np.ndarray) -> bytes:
    frame = cv2.resize(image, (1920, 1080), interpolation=cv2.INTER_LINEAR)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes()


def served_predictions(model_dir: str, frames: list[bytes], labels: list[str], tmp: str,
                       *flags: str) -> np.ndarray:
    sys.path.insert(0, os.path.join(BUILD, "python"))
    from matid.v1 import matid_pb2, matid_pb2_grpc
    server = Process([os.path.join(BUILD, "bin", "matid-server"), f"--model_dir={model_dir}",
                      "--host=127.0.0.1", "--port=0", "--metrics_port=-1", *flags],
                     r"serving grpc_port=(\d+)",
                     os.path.join(tmp, f"server{'-'.join(flags)}.log"))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.match.group(1)}") as channel:
            stub = matid_pb2_grpc.ClassifierStub(channel)

            def classify(jpeg: bytes) -> int:
                response = stub.Classify(matid_pb2.ClassifyRequest(
                    image=matid_pb2.Image(encoded=jpeg), top_k=1), timeout=60)
                return labels.index(response.predictions[0].label)

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                return np.array(list(pool.map(classify, frames)))
    finally:
        server.stop()


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", default=os.path.join(ROOT, "models", "fashion-mnist"))
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results",
                                                       "reduced-decode-agreement.json"))
    args = parser.parse_args(argv)
    images, truth = fashion_mnist.load("test")
    images, truth = images[:args.count], truth[:args.count]
    with open(os.path.join(args.model_dir, "metadata.json")) as f:
        metadata = json.load(f)
    labels, spec = metadata["labels"], metadata["input"]
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        frames = list(pool.map(frame_jpeg, images))
    offline = offline_predictions(args.model_dir, frames_as_input(frames, spec))
    originals = offline_predictions(args.model_dir, originals_as_input(images, spec))
    with tempfile.TemporaryDirectory(prefix="matid-agreement-") as tmp:
        full = served_predictions(args.model_dir, frames, labels, tmp)
        reduced = served_predictions(args.model_dir, frames, labels, tmp, "--reduced_jpeg_decode")

    def share(a: np.ndarray, b: np.ndarray) -> float:
        return round(float(np.mean(a == b)), 5)

    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine.describe(), "images": int(len(images)),
        "frame": "1920x1080 JPEG q90, stretched from 28x28", "model_dir": args.model_dir,
        "accuracy_offline": share(offline, truth), "accuracy_served_full": share(full, truth),
        "accuracy_served_reduced": share(reduced, truth),
        "accuracy_offline_28x28_originals": share(originals, truth),
        "agreement_reduced_vs_offline": share(reduced, offline),
        "agreement_full_vs_offline": share(full, offline),
        "agreement_reduced_vs_full": share(reduced, full),
        "agreement_full_vs_28x28_originals": share(full, originals),
        "accuracy_points_reduced_minus_offline": round(
            100 * (float(np.mean(reduced == truth)) - float(np.mean(offline == truth))), 2),
    }
    print(json.dumps(result, indent=1))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
