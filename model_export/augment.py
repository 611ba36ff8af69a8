"""The reference deployment's augmentations, each switchable.

Every function takes and returns a uint8 image (H x W gray, or H x W x 3 in
RGB order) and never changes its input. The `augment` stage writes augmented
copies of a fraction of the training images and a training manifest that
lists originals plus copies; validation and test are never augmented.
"""
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

import cv2
import numpy as np

from .dataset import Sample, folder_name, load_image, write_jsonl, write_lst

CHANNEL_INDEX = {"red": 0, "green": 1, "blue": 2}  # RGB order


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Counter-clockwise about the centre, same size, corners filled black.
    Multiples of 90 degrees are exact (no interpolation)."""
    if degrees % 90 == 0:
        return np.ascontiguousarray(np.rot90(image, k=int(degrees // 90) % 4))
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def flip_horizontal(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def flip_vertical(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[::-1])


def saturate_channel(image: np.ndarray, channel: str, factor: float = 1.5) -> np.ndarray:
    """Scales one colour channel (red, green or blue) by `factor`, clipped.
    A gray image has no channels to saturate and is returned unchanged."""
    if image.ndim == 2:
        return image.copy()
    out = image.astype(np.float32)
    index = CHANNEL_INDEX[channel]
    out[..., index] *= factor
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def random_crop(images: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """A batch of uint8 NHWC images, each zero-padded by `padding` pixels on
    every side and cut back to its size at a random offset (online, during
    training; the usual augmentation for Fashion-MNIST and CIFAR)."""
    count, height, width = images.shape[:3]
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    dy = rng.integers(0, 2 * padding + 1, count)
    dx = rng.integers(0, 2 * padding + 1, count)
    rows = (dy[:, None] + np.arange(height))[:, :, None]
    cols = (dx[:, None] + np.arange(width))[:, None, :]
    return padded[np.arange(count)[:, None, None], rows, cols]


@dataclass
class AugmentOptions:
    """Which augmentations run, and on how much of the training set."""
    fraction: float = 0.1      # of training images that get augmented copies
    rotate45: bool = False
    rotate90: bool = False
    flip_horizontal: bool = True
    flip_vertical: bool = False
    saturation: List[str] = field(default_factory=list)  # of "red", "green", "blue"
    noise_sigma: float = 8.0   # 0 turns gaussian noise off
    seed: int = 42

    def transforms(self, rng: np.random.Generator) -> Dict[str, Callable[[np.ndarray], np.ndarray]]:
        chosen: Dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        if self.rotate45:
            chosen["rot45"] = lambda im: rotate(im, 45)
        if self.rotate90:
            chosen["rot90"] = lambda im: rotate(im, 90)
        if self.flip_horizontal:
            chosen["fliph"] = flip_horizontal
        if self.flip_vertical:
            chosen["flipv"] = flip_vertical
        for channel in self.saturation:
            if channel not in CHANNEL_INDEX:
                raise ValueError(f"saturation channel {channel!r}: expected red, green or blue")
            chosen[f"sat{channel}"] = lambda im, c=channel: saturate_channel(im, c)
        if self.noise_sigma > 0:
            chosen["noise"] = lambda im: gaussian_noise(im, self.noise_sigma, rng)
        return chosen


def augment_training_set(data_dir: str, manifest_dir: str, train: Sequence[Sample],
                         labels: Sequence[str], color: str,
                         options: AugmentOptions) -> Tuple[List[Sample], List[Sample]]:
    """Writes augmented copies and train_augmented.{lst,jsonl}.

    Returns (augmented copies, originals + copies)."""
    rng = np.random.default_rng(options.seed)
    transforms = options.transforms(rng)
    count = int(round(len(train) * options.fraction)) if transforms else 0
    chosen = rng.choice(len(train), size=count, replace=False) if count else []
    copies: List[Sample] = []
    for index in sorted(chosen):
        sample = train[index]
        image = load_image(os.path.join(data_dir, sample.path), color)
        if color == "rgb":
            image = image[:, :, ::-1]
        stem = os.path.splitext(os.path.basename(sample.path))[0]
        for name, transform in transforms.items():
            out = transform(image)
            relative = os.path.join("augmented", folder_name(labels[sample.label]),
                                    f"{stem}_{name}.png")
            absolute = os.path.join(data_dir, relative)
            os.makedirs(os.path.dirname(absolute), exist_ok=True)
            cv2.imwrite(absolute, out if out.ndim == 2 else out[:, :, ::-1])
            copies.append(Sample(relative, sample.label))
    combined = list(train) + copies
    write_lst(os.path.join(manifest_dir, "train_augmented.lst"), combined)
    write_jsonl(os.path.join(manifest_dir, "train_augmented.jsonl"), combined, labels)
    return copies, combined
