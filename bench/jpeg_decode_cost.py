#!/usr/bin/python3
"""Benchmark (not a test): what a camera-resolution JPEG costs the server's
preprocessing, step by step, on one thread (issue 12). The same OpenCV and
libjpeg-turbo libraries matid-server links (Debian's), called from Python:
decode at full size and at 1/2, 1/4 and 1/8 scale (libjpeg's scaled DCT:
the entropy decoding of the whole bitstream is the same at every scale, so
1/8 is the floor of any JPEG decode), the resize to the model input after
the reduced decode, and a 224x224 JPEG's decode for comparison.

Inputs are bench.camera_resolution's JPEG folders (made by it when missing).
Rounds alternate the steps (this machine's speed drifts); the median of the
rounds' per-image times is reported. Prints a table and writes
bench/results/jpeg-decode-cost.json.

    /usr/bin/python3 -m bench.jpeg_decode_cost [--rounds 5]
"""
import argparse
import datetime
import glob
import json
import os
import statistics
import time
from typing import Callable, Optional

import cv2
import numpy as np

from bench import camera_resolution
from scripts import machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def per_image_ms(step: Callable[[np.ndarray], object], images: list[np.ndarray]) -> float:
    started = time.perf_counter()
    for image in images:
        step(image)
    return 1000 * (time.perf_counter() - started) / len(images)


def steps() -> dict:
    """name: (input folder, step on one encoded image)."""
    reduced4 = cv2.IMREAD_REDUCED_COLOR_4

    def resize_after(interpolation: int) -> Callable[[np.ndarray], object]:
        def step(decoded: np.ndarray) -> object:
            return cv2.resize(decoded, (224, 224), interpolation=interpolation)
        return step

    return {
        "224 decode (colour)": ("jpeg-224", lambda b: cv2.imdecode(b, cv2.IMREAD_COLOR)),
        "1080 decode full (colour)": ("jpeg-1080", lambda b: cv2.imdecode(b, cv2.IMREAD_COLOR)),
        "1080 decode 1/2 (colour)": ("jpeg-1080",
                                     lambda b: cv2.imdecode(b, cv2.IMREAD_REDUCED_COLOR_2)),
        "1080 decode 1/4 (colour)": ("jpeg-1080", lambda b: cv2.imdecode(b, reduced4)),
        "1080 decode 1/8 (colour)": ("jpeg-1080",
                                     lambda b: cv2.imdecode(b, cv2.IMREAD_REDUCED_COLOR_8)),
        "1080 decode 1/8 (gray)": ("jpeg-1080",
                                   lambda b: cv2.imdecode(b, cv2.IMREAD_REDUCED_GRAYSCALE_8)),
        "480x270 -> 224x224 INTER_AREA": ("decoded-1/4", resize_after(cv2.INTER_AREA)),
        "480x270 -> 224x224 INTER_LINEAR": ("decoded-1/4", resize_after(cv2.INTER_LINEAR)),
    }


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results",
                                                       "jpeg-decode-cost.json"))
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    paths = camera_resolution.make_inputs(300)
    inputs = {name: [np.fromfile(p, np.uint8) for p in sorted(glob.glob(f"{paths[name]}/*.jpg"))]
              for name in ("jpeg-224", "jpeg-1080")}
    inputs["decoded-1/4"] = [cv2.imdecode(b, cv2.IMREAD_REDUCED_COLOR_4)
                             for b in inputs["jpeg-1080"]]
    measured: dict = {name: [] for name in steps()}
    for _ in range(args.rounds):
        for name, (folder, step) in steps().items():
            measured[name].append(per_image_ms(step, inputs[folder]))
    medians = {name: round(statistics.median(times), 3) for name, times in measured.items()}
    sizes = {name: round(statistics.mean(len(b) for b in inputs[name])) for name in
             ("jpeg-224", "jpeg-1080")}
    for name, ms in medians.items():
        print(f"{name:34s} {ms:7.3f} ms/image")
    print(f"mean JPEG size: 1080p {sizes['jpeg-1080']} bytes, 224x224 {sizes['jpeg-224']} bytes")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "machine": machine.describe(), "rounds": args.rounds,
                   "opencv": cv2.__version__, "mean_bytes": sizes, "ms_per_image": medians,
                   "runs": measured}, f, indent=1)


if __name__ == "__main__":
    main()
