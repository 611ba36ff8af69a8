#!/usr/bin/python3
"""Reads Fashion-MNIST from Debian's dataset-fashion-mnist package.

The IDX files live in /usr/share/datasets/fashion-mnist/ (gzip-compressed).
As a script it writes images as PNG files, one folder per class:

    /usr/bin/python3 -m model_export.fashion_mnist --split test --count 200 --out DIR
"""
import argparse
import gzip
import os
import struct
from typing import Tuple

from . import debian_python  # noqa: E402

debian_python.ensure()

import numpy as np  # noqa: E402

DATASET_DIR = "/usr/share/datasets/fashion-mnist"
LABELS = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def folder_name(label: str) -> str:
    """A file-system-safe folder name for a label ("T-shirt/top" -> "T-shirt_top")."""
    return label.replace("/", "_").replace(" ", "_")


def _read_idx(path: str, expected_magic: int) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short to be an IDX file")
    magic, count = struct.unpack(">II", data[:8])
    if magic != expected_magic:
        raise ValueError(f"{path}: IDX magic {magic:#x}, expected {expected_magic:#x}")
    if expected_magic == 2051:  # images: rows, cols follow
        rows, cols = struct.unpack(">II", data[8:16])
        array = np.frombuffer(data, dtype=np.uint8, offset=16)
        if array.size != count * rows * cols:
            raise ValueError(f"{path}: truncated ({array.size} of {count * rows * cols} pixels)")
        return array.reshape(count, rows, cols)
    array = np.frombuffer(data, dtype=np.uint8, offset=8)
    if array.size != count:
        raise ValueError(f"{path}: truncated ({array.size} of {count} labels)")
    return array


def load(split: str, dataset_dir: str = DATASET_DIR) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (images uint8 [N, 28, 28], labels uint8 [N]) for "train" or "test"."""
    prefix = SPLIT_PREFIX[split]
    def find(stem: str) -> str:
        for name in (f"{stem}.gz", stem):
            path = os.path.join(dataset_dir, name)
            if os.path.exists(path):
                return path
        raise FileNotFoundError(
            f"{os.path.join(dataset_dir, stem)}[.gz] not found; "
            "install Debian's dataset-fashion-mnist package")
    images = _read_idx(find(f"{prefix}-images-idx3-ubyte"), 2051)
    labels = _read_idx(find(f"{prefix}-labels-idx1-ubyte"), 2049)
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    return images, labels


def write_pngs(split: str, out_dir: str, count: int = 0, start: int = 0) -> int:
    """Writes images as out_dir/<class folder>/<split>_<index>.png; returns how many."""
    import cv2
    images, labels = load(split)
    end = len(images) if count <= 0 else min(len(images), start + count)
    for index in range(start, end):
        folder = os.path.join(out_dir, folder_name(LABELS[labels[index]]))
        os.makedirs(folder, exist_ok=True)
        cv2.imwrite(os.path.join(folder, f"{split}_{index:05d}.png"), images[index])
    return end - start


def main() -> None:
    parser = argparse.ArgumentParser(description="Export Fashion-MNIST images as PNG files")
    parser.add_argument("--split", choices=["train", "test"], default="test")
    parser.add_argument("--count", type=int, default=0, help="0 means all")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    written = write_pngs(args.split, args.out, args.count, args.start)
    print(f"wrote {written} {args.split} images to {args.out}")


if __name__ == "__main__":
    main()
