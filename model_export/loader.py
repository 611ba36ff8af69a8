"""Where training batches come from: uint8 NHWC images (RGB order) at the
model's input size, with their labels.

- ArrayBatches: a set small enough to hold whole at the input size
  (Fashion-MNIST: 54,000 x 28 x 28 is 42 MB), with the small-image online
  augmentation (random crop after zero padding).
- FolderBatches: images decoded from disk by `workers` DataLoader processes,
  batch by batch, so memory does not grow with the number of images; with
  PhotoAugment for photos (random resized crop, rotation by any angle,
  vertical flip, colour jitter).

Horizontal flips happen in the training loop, for both. No batch holds a
single image: a tail of one joins the batch before it (batch_bounds). A
batch source is used from the training loop's thread only.
"""
import math
import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.utils.data

from .augment import random_crop
from .dataset import Sample, fit, load_image

Batch = Tuple[np.ndarray, np.ndarray]  # uint8 [N, H, W, C] RGB, int64 [N]


def batch_bounds(count: int, batch_size: int, even: bool = False) -> List[Tuple[int, int]]:
    """[start, end) of each batch of an epoch of `count` images.

    A last batch of one image joins the one before: batch norm learns
    nothing from one image (torchvision's ResNets at small inputs refuse
    it). With `even`, every batch has an even size: the size is rounded
    down to even and an odd last batch leaves out its last image (another
    one each epoch, as the order is shuffled). bf16 autocast training needs
    it: Debian's torch 1.13 corrupts the heap in convolution backward on an
    odd batch (seen with avx512_bf16 on batches of 1, 3, ... 33; never on
    even ones)."""
    if even:
        batch_size = max(2, batch_size - batch_size % 2)
    bounds = [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
    if not even and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], count)]
    if even and bounds and (bounds[-1][1] - bounds[-1][0]) % 2:
        start, end = bounds.pop()
        if end - 1 > start:
            bounds.append((start, end - 1))
    return bounds


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

    def epoch(self, rng: Optional[np.random.Generator], even: bool = False) -> Iterator[Batch]:
        """Shuffled and augmented with `rng`; in order and as stored without.
        `even`: batches of even sizes only (batch_bounds)."""
        order = rng.permutation(self.count) if rng is not None else np.arange(self.count)
        for start, end in batch_bounds(self.count, self.batch_size, even):
            index = order[start:end]
            images = self.images[index]
            if rng is not None and self.crop_padding > 0:
                images = random_crop(images, self.crop_padding, rng)
            yield images, self.labels[index]

    def sample(self, count: int) -> np.ndarray:
        """Every image: they are in memory already (`count` is for FolderBatches)."""
        return self.images

    def describe(self) -> str:
        return (f"{self.count} images in memory, random crop padding {self.crop_padding}")


# Photo augmentation works on images shrunk to this many times the input
# size (a random resized crop keeps at least 77% of a side, so the crop is
# still shrunk to the input, never enlarged).
WORKING_SCALE = 1.5


def working_size(image: np.ndarray, size: Tuple[int, int]) -> Tuple[int, int]:
    """(width, height) an image is kept at for augmentation to `size`:
    WORKING_SCALE times the input, never larger than the image."""
    h, w = image.shape[:2]
    scale = min(1.0, WORKING_SCALE * max(size[0] / w, size[1] / h))
    return max(1, round(w * scale)), max(1, round(h * scale))


class _FolderImages(torch.utils.data.Dataset):
    """Images read from disk by key. With photo augmentation each worker
    keeps the images it decoded, at the working size, while they fit in
    `cache_bytes`: an image is decoded once, not once per epoch."""

    def __init__(self, data_dir: str, samples: Sequence[Sample], color: str, size: Tuple[int, int],
                 augment: Optional[PhotoAugment], seed: int, cache_bytes: int = 0) -> None:
        self.paths = [os.path.join(data_dir, s.path) for s in samples]
        self.labels = np.array([s.label for s in samples], dtype=np.int64)
        self.color, self.size, self.augment, self.seed = color, size, augment, seed
        self.cache_bytes = cache_bytes
        self.cache: Dict[int, np.ndarray] = {}
        self.cached_bytes = 0

    def working_image(self, index: int) -> np.ndarray:
        image = self.cache.get(index)
        if image is None:
            image = read_rgb(self.paths[index], self.color)
            width, height = working_size(image, self.size)
            image = fit(image, width, height).reshape(height, width, -1)
            if self.cached_bytes + image.nbytes <= self.cache_bytes:
                self.cache[index] = image
                self.cached_bytes += image.nbytes
        return image

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: Tuple[int, int]) -> Tuple[np.ndarray, int]:
        """key: (epoch, index); epoch 0 is unaugmented."""
        epoch, index = key
        width, height = self.size
        if self.augment is None or epoch == 0:  # as the server sees it: from the stored image
            image = read_rgb(self.paths[index], self.color)
            image = fit(image, width, height).reshape(height, width, -1)
        else:  # the same draw for the same image, epoch and seed, whichever worker
            rng = np.random.default_rng((self.seed, epoch, index))
            image = self.augment(self.working_image(index), width, height, rng)
        return image, int(self.labels[index])


class _EpochOrder(torch.utils.data.Sampler):
    """Yields the batches of (epoch, index) keys set for the coming epoch, so
    persistent workers need no state from this process."""

    def __init__(self, batch_size: int) -> None:
        self.keys: List[Tuple[int, int]] = []
        self.batch_size = batch_size
        self.even = False

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        for start, end in batch_bounds(len(self.keys), self.batch_size, self.even):
            yield self.keys[start:end]

    def __len__(self) -> int:
        return len(batch_bounds(len(self.keys), self.batch_size, self.even))


def _stack(items: List[Tuple[np.ndarray, int]]) -> Batch:
    return (np.stack([image for image, _ in items]),
            np.array([label for _, label in items], dtype=np.int64))


class FolderBatches:
    def __init__(self, data_dir: str, samples: Sequence[Sample], color: str,
                 size: Tuple[int, int], batch_size: int, workers: int,
                 augment: Optional[PhotoAugment] = None, seed: int = 0,
                 cache_bytes: int = 0) -> None:
        """cache_bytes: memory for decoded images, shared out among the workers."""
        self.images = _FolderImages(data_dir, samples, color, size, augment, seed,
                                    cache_bytes // max(1, workers))
        self.labels = self.images.labels
        self.batch_size, self.workers = batch_size, workers
        self.count = len(samples)
        self.epochs = 0
        self.order = _EpochOrder(batch_size)
        # Workers start once and stay for every epoch (one fork, not one per epoch).
        self.loader = torch.utils.data.DataLoader(
            self.images, batch_sampler=self.order, num_workers=workers,
            collate_fn=_stack, persistent_workers=workers > 0,
            prefetch_factor=2 if workers > 0 else None)

    def epoch(self, rng: Optional[np.random.Generator], even: bool = False) -> Iterator[Batch]:
        """Shuffled (and augmented, when the source augments) with `rng`; in
        order and unaugmented without. `even`: batches of even sizes only."""
        self.order.even = even
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
