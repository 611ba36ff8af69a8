"""Where training batches come from: uint8 NHWC images (RGB order) at the
model's input size, with their labels.

- ArrayBatches: a set small enough to hold whole at the input size
  (Fashion-MNIST: 54,000 x 28 x 28 is 42 MB), with the small-image online
  augmentation (random crop after zero padding).
- FolderBatches: images decoded from disk by `workers` DataLoader processes,
  batch by batch, so memory does not grow with the number of images; with
  PhotoAugment for photos (random resized crop, rotation by any angle,
  vertical flip, colour jitter).

Horizontal flips happen in the training loop, for both. A batch source is
used from the training loop's thread only.
"""
import math
import os
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.utils.data

from .augment import random_crop
from .dataset import Sample, fit, load_image

Batch = Tuple[np.ndarray, np.ndarray]  # uint8 [N, H, W, C] RGB, int64 [N]


def read_rgb(path: str, color: str) -> np.ndarray:
    """HxWxC uint8 in the model's channel order (C = 1 or 3)."""
    image = load_image(path, color)
    return image[:, :, None] if image.ndim == 2 else image[:, :, ::-1]


@dataclass(frozen=True)
class PhotoAugment:
    """Online augmentation for photos of parts, drawn anew for every image."""
    min_crop_area: float = 0.6   # random resized crop keeps 60-100% of the area
    max_aspect_change: float = 4 / 3
    rotate: bool = True          # by any angle (parts lie any way round)
    flip_vertical: bool = True
    jitter: float = 0.2          # brightness, contrast and saturation by up to +-20%

    def __call__(self, image: np.ndarray, width: int, height: int,
                 rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        area = h * w * rng.uniform(self.min_crop_area, 1.0)
        aspect = math.exp(rng.uniform(-math.log(self.max_aspect_change),
                                      math.log(self.max_aspect_change)))
        crop_w = min(w, int(round(math.sqrt(area * aspect))))
        crop_h = min(h, int(round(math.sqrt(area / aspect))))
        y, x = int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1))
        out = image[y:y + crop_h, x:x + crop_w]
        if self.rotate:
            matrix = cv2.getRotationMatrix2D(((crop_w - 1) / 2, (crop_h - 1) / 2),
                                             rng.uniform(0, 360), 1.0)
            out = cv2.warpAffine(out, matrix, (crop_w, crop_h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT_101)
        out = fit(out, width, height)
        if out.ndim == 2:
            out = out[:, :, None]
        if self.flip_vertical and rng.random() < 0.5:
            out = out[::-1]
        if self.jitter > 0:
            pixels = out.astype(np.float32)
            pixels *= rng.uniform(1 - self.jitter, 1 + self.jitter)  # brightness
            mean = pixels.mean()
            pixels = (pixels - mean) * rng.uniform(1 - self.jitter, 1 + self.jitter) + mean
            if pixels.shape[2] == 3:
                gray = pixels.mean(axis=2, keepdims=True)
                pixels = (pixels - gray) * rng.uniform(1 - self.jitter, 1 + self.jitter) + gray
            out = np.clip(pixels, 0, 255)
        return np.ascontiguousarray(out, dtype=np.uint8)


class ArrayBatches:
    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int,
                 crop_padding: int = 0) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.crop_padding = batch_size, crop_padding
        self.count = len(images)

    def epoch(self, rng: Optional[np.random.Generator]) -> Iterator[Batch]:
        """Shuffled and augmented with `rng`; in order and as stored without."""
        order = rng.permutation(self.count) if rng is not None else np.arange(self.count)
        for start in range(0, self.count, self.batch_size):
            index = order[start:start + self.batch_size]
            images = self.images[index]
            if rng is not None and self.crop_padding > 0:
                images = random_crop(images, self.crop_padding, rng)
            yield images, self.labels[index]

    def sample(self, count: int) -> np.ndarray:
        """Every image: they are in memory already (`count` is for FolderBatches)."""
        return self.images

    def describe(self) -> str:
        return (f"{self.count} images in memory, random crop padding {self.crop_padding}")


class _FolderImages(torch.utils.data.Dataset):
    def __init__(self, data_dir: str, samples: Sequence[Sample], color: str, size: Tuple[int, int],
                 augment: Optional[PhotoAugment], seed: int) -> None:
        self.paths = [os.path.join(data_dir, s.path) for s in samples]
        self.labels = np.array([s.label for s in samples], dtype=np.int64)
        self.color, self.size, self.augment, self.seed = color, size, augment, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: Tuple[int, int]) -> Tuple[np.ndarray, int]:
        """key: (epoch, index); epoch 0 is unaugmented."""
        epoch, index = key
        image = read_rgb(self.paths[index], self.color)
        width, height = self.size
        if self.augment is None or epoch == 0:
            image = fit(image, width, height).reshape(height, width, -1)
        else:  # the same draw for the same image, epoch and seed, whichever worker
            rng = np.random.default_rng((self.seed, epoch, index))
            image = self.augment(image, width, height, rng)
        return image, int(self.labels[index])


class _EpochOrder(torch.utils.data.Sampler):
    """Yields (epoch, index) keys in the order set for the coming epoch, so
    persistent workers need no state from this process."""

    def __init__(self) -> None:
        self.keys: List[Tuple[int, int]] = []

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def _stack(items: List[Tuple[np.ndarray, int]]) -> Batch:
    return (np.stack([image for image, _ in items]),
            np.array([label for _, label in items], dtype=np.int64))


class FolderBatches:
    def __init__(self, data_dir: str, samples: Sequence[Sample], color: str,
                 size: Tuple[int, int], batch_size: int, workers: int,
                 augment: Optional[PhotoAugment] = None, seed: int = 0) -> None:
        self.images = _FolderImages(data_dir, samples, color, size, augment, seed)
        self.labels = self.images.labels
        self.batch_size, self.workers = batch_size, workers
        self.count = len(samples)
        self.epochs = 0
        self.order = _EpochOrder()
        # Workers start once and stay for every epoch (one fork, not one per epoch).
        self.loader = torch.utils.data.DataLoader(
            self.images, batch_size=batch_size, sampler=self.order, num_workers=workers,
            collate_fn=_stack, persistent_workers=workers > 0,
            prefetch_factor=2 if workers > 0 else None)

    def epoch(self, rng: Optional[np.random.Generator]) -> Iterator[Batch]:
        """Shuffled (and augmented, when the source augments) with `rng`; in
        order and unaugmented without."""
        if rng is None:
            self.order.keys = [(0, i) for i in range(self.count)]
        else:
            self.epochs += 1
            self.order.keys = [(self.epochs, int(i)) for i in rng.permutation(self.count)]
        yield from self.loader

    def describe(self) -> str:
        augment = self.images.augment
        return (f"{self.count} images read from disk by {self.workers} worker processes, "
                + (f"photo augmentation {augment}" if augment else "no augmentation"))

    def sample(self, count: int) -> np.ndarray:
        """Up to `count` images spread over the set (which is in class order),
        unaugmented: for the channel statistics."""
        picks = np.unique(np.linspace(0, self.count - 1, min(count, self.count)).astype(int))
        return np.stack([self.images[(0, int(i))][0] for i in picks])
