#!/usr/bin/python3
"""Reference preprocessing, written independently in Python/OpenCV/NumPy.

preprocessor_test.cc runs this on fixed images and compares the C++
Preprocessor's output with what this writes. Usage:

    reference_preprocess.py JOBS.json

where JOBS.json is a list of {"image": path, "spec": {width, height, color,
resize, mean, std}, "out": path}; each out file gets float32 CHW values.
"""
import json
import math
import sys

import cv2
import numpy as np


def round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5))


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    shrinking = w >= width and h >= height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interpolation)


def fit(img: np.ndarray, width: int, height: int, mode: str) -> np.ndarray:
    h, w = img.shape[:2]
    if mode == "stretch":
        return resize(img, width, height)
    if mode == "center_crop":
        scale = max(width / w, height / h)
        sw = max(width, round_half_away(w * scale))
        sh = max(height, round_half_away(h * scale))
        scaled = resize(img, sw, sh)
        x0, y0 = (sw - width) // 2, (sh - height) // 2
        return scaled[y0:y0 + height, x0:x0 + width]
    if mode == "letterbox":
        scale = min(width / w, height / h)
        sw = min(width, max(1, round_half_away(w * scale)))
        sh = min(height, max(1, round_half_away(h * scale)))
        canvas = np.zeros((height, width) + img.shape[2:], dtype=np.uint8)
        x0, y0 = (width - sw) // 2, (height - sh) // 2
        canvas[y0:y0 + sh, x0:x0 + sw] = resize(img, sw, sh)
        return canvas
    raise ValueError(mode)


def preprocess(path: str, spec: dict) -> np.ndarray:
    return preprocess_encoded(np.fromfile(path, dtype=np.uint8), spec)


REDUCED = {"gray": {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
                    4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8},
           "rgb": {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                   4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}}


def reduced_factor(data: np.ndarray, spec: dict) -> int:
    """The JPEG decoding reduction the server picks (--reduced_jpeg_decode,
    on by default): the largest of 8, 4, 2 that leaves both sides at least
    the model's input size; 1 for anything but a JPEG."""
    raw = data.tobytes()
    if raw[:2] != b"\xff\xd8":
        return 1
    at = 2
    while at + 9 < len(raw) and raw[at] == 0xFF:
        marker, length = raw[at + 1], int.from_bytes(raw[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = int.from_bytes(raw[at + 5:at + 7], "big"), int.from_bytes(raw[at + 7:at + 9], "big")
            for factor in (8, 4, 2):
                if w // factor >= spec["width"] and h // factor >= spec["height"]:
                    return factor
            return 1
        at += 2 + length
    return 1


def preprocess_encoded(data: np.ndarray, spec: dict, reduced_jpeg_decode: bool = False) -> np.ndarray:
    """The model input (CHW float32) for an encoded image's bytes (uint8)."""
    gray = spec["color"] == "gray"
    factor = reduced_factor(data, spec) if reduced_jpeg_decode else 1
    img = cv2.imdecode(data, REDUCED["gray" if gray else "rgb"][factor])
    img = fit(img, spec["width"], spec["height"], spec["resize"])
    if gray:
        img = img[:, :, None]
    else:
        img = img[:, :, ::-1]  # BGR -> RGB
    mean = np.array(spec["mean"], dtype=np.float32)
    std = np.array(spec["std"], dtype=np.float32)
    x = (img.astype(np.float32) / np.float32(255.0) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def main() -> None:
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        preprocess(job["image"], job["spec"]).tofile(job["out"])


if __name__ == "__main__":
    main()
