"""Where training batches come from: uint8 NHWC images (RGB order) at the
model's input size, with their labels.

- ArrayBatches: a set small enough to hold whole at the input size
  (Fashion-MNIST: 54,000 x 28 x 28 is 42 MB), with the small-image online
  augmentation (random crop after zero padding).
- FolderBatches: images decoded from disk by `workers` DataLoader processes,
  batch by batch, so memory does not grow with the number of images; with
  PhotoAugment for photos (random resized crop, rotation by any angle,
  vertical flip, colour jitter).

Both flip half the training images horizontally, and give a process its
share of each batch under torchrun (distributed.py). No batch holds a
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
from .distributed import Share

Batch = Tuple[np.ndarray, np.ndarray]  # uint8 [N, H, W, C] RGB, int64 [N]


def batch_bounds(count: int, batch_size: int, multiple: int = 1) -> List[Tuple[int, int]]:
    """[start, end) of each batch of an epoch of `count` images.

    A last batch of one image joins the one before: batch norm learns
    nothing from one image (torchvision's ResNets at small inputs refuse
    it). With `multiple` > 1, every batch is a multiple of it: the size is
    rounded down to one and a last batch leaves out the images beyond one
    (others each epoch, as the order is shuffled). Training uses 2 under
    bf16 autocast: Debian's torch 1.13 corrupts the heap in bf16
    convolution backward on an odd batch (seen with avx512_bf16 on batches
    of 1, 3, ... 33; never on even ones); and the number of processes
    under torchrun, so that each takes an equal share (times 2 with bf16)."""
    if multiple > 1:
        batch_size = max(multiple, batch_size - batch_size % multiple)
    bounds = [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
    if multiple == 1 and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], count)]
    if multiple > 1 and bounds and (bounds[-1][1] - bounds[-1][0]) % multiple:
        start, end = bounds.pop()
        end -= (end - start) % multiple
        if end > start:
            bounds.append((start, end))
    return bounds


def read_rgb(path: str, color: str) -> np.ndarray:
    """HxWxC uint8 in the model's channel order (C = 1 or 3)."""
    image = load_image(path, color)
    return image[:, :, None] if image.ndim == 2 else image[:, :, ::-1]


@dataclass(frozen=True)
class PhotoAugment:
    """Online augmentation for photos of parts, drawn anew for every image:
    the whole photo turned by any angle (the corners it uncovers filled by
    repeating the edge, which is belt: a mirrored border would add copies of
    a part lying near it), then a random crop of 90-100% of the area that
    keeps the aspect (a crop that cuts a part off teaches its label on belt;
    one that changes the aspect makes a washer an ellipse, which is how a hex
    nut looks at 160 px; with 80% and +-15% aspect and the first best epoch
    kept, the six parts reached 0.81 test accuracy, with this and ties going
    to the later epoch 0.91, one seed each), a vertical flip, colour jitter."""
    min_crop_area: float = 0.9   # random resized crop keeps 90-100% of the area
    max_aspect_change: float = 1.0  # the crop keeps the aspect: a circle stays one
    rotate: bool = True          # by any angle (parts lie any way round)
    flip_vertical: bool = True
    jitter: float = 0.2          # brightness, contrast and saturation by up to +-20%

    def __call__(self, image: np.ndarray, width: int, height: int,
                 rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        out = image
        if self.rotate:
            matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), rng.uniform(0, 360), 1.0)
            out = cv2.warpAffine(out, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
            if out.ndim == 2:
                out = out[:, :, None]
        area = h * w * rng.uniform(self.min_crop_area, 1.0)
        aspect = math.exp(rng.uniform(-math.log(self.max_aspect_change),
                                      math.log(self.max_aspect_change)))
        crop_w = min(w, int(round(math.sqrt(area * aspect))))
        crop_h = min(h, int(round(math.sqrt(area / aspect))))
        y, x = int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1))
        out = fit(out[y:y + crop_h, x:x + crop_w], width, height)
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
                 crop_padding: int = 0, flip: bool = False) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.crop_padding, self.flip = batch_size, crop_padding, flip
        self.count = len(images)

    def epoch(self, rng: Optional[np.random.Generator], multiple: int = 1,
              share: Share = Share()) -> Iterator[Batch]:
        """Shuffled and augmented with `rng` (random crop, horizontal flip of
        half); in order and as stored without. Batch sizes are multiples of
        `multiple` (batch_bounds); each batch is made whole, so that `rng`
        draws the same on every process, and `share` of it is yielded."""
        order = rng.permutation(self.count) if rng is not None else np.arange(self.count)
        for start, end in batch_bounds(self.count, self.batch_size, multiple):
            index = order[start:end]
            images = self.images[index]
            if rng is not None and self.crop_padding > 0:
                images = random_crop(images, self.crop_padding, rng)
            if rng is not None and self.flip:
                flips = rng.random(len(index)) < 0.5
                images[flips] = images[flips, :, ::-1]
            first, last = share.bounds(len(index))
            yield images[first:last], self.labels[index][first:last]

    def sample(self, count: int) -> np.ndarray:
        """Every image: they are in memory already (`count` is for FolderBatches)."""
        return self.images

    def describe(self) -> str:
        return (f"{self.count} images in memory, random crop padding {self.crop_padding}")


# Photo augmentation works on images shrunk to this many times the input
# size (a random resized crop keeps at least 83% of a side, so the crop is
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
                 augment: Optional[PhotoAugment], seed: int, cache_bytes: int = 0,
                 flip: bool = False) -> None:
        self.paths = [os.path.join(data_dir, s.path) for s in samples]
        self.labels = np.array([s.label for s in samples], dtype=np.int64)
        self.color, self.size, self.augment, self.seed = color, size, augment, seed
        self.flip = flip
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
        if epoch == 0 or self.augment is None:  # as the server sees it: from the stored image
            image = read_rgb(self.paths[index], self.color)
            image = fit(image, width, height).reshape(height, width, -1)
        if epoch > 0:  # the same draw for the same image, epoch and seed, whichever worker
            rng = np.random.default_rng((self.seed, epoch, index))
            if self.augment is not None:
                image = self.augment(self.working_image(index), width, height, rng)
            if self.flip and rng.random() < 0.5:
                image = np.ascontiguousarray(image[:, ::-1])
        return image, int(self.labels[index])


class _EpochOrder(torch.utils.data.Sampler):
    """Yields the batches of (epoch, index) keys set for the coming epoch, so
    persistent workers need no state from this process."""

    def __init__(self, batch_size: int) -> None:
        self.keys: List[Tuple[int, int]] = []
        self.batch_size = batch_size
        self.multiple = 1
        self.share = Share()

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        for start, end in batch_bounds(len(self.keys), self.batch_size, self.multiple):
            first, last = self.share.bounds(end - start)
            yield self.keys[start + first:start + last]

    def __len__(self) -> int:
        return len(batch_bounds(len(self.keys), self.batch_size, self.multiple))


def _stack(items: List[Tuple[np.ndarray, int]]) -> Batch:
    return (np.stack([image for image, _ in items]),
            np.array([label for _, label in items], dtype=np.int64))


class FolderBatches:
    def __init__(self, data_dir: str, samples: Sequence[Sample], color: str,
                 size: Tuple[int, int], batch_size: int, workers: int,
                 augment: Optional[PhotoAugment] = None, seed: int = 0,
                 cache_bytes: int = 0, flip: bool = False) -> None:
        """cache_bytes: memory for decoded images, shared out among the
        workers; flip: horizontal flips of half the training images."""
        self.images = _FolderImages(data_dir, samples, color, size, augment, seed,
                                    cache_bytes // max(1, workers), flip)
        self.labels = self.images.labels
        self.batch_size, self.workers = batch_size, workers
        self.count = len(samples)
        self.epochs = 0
        self.order = _EpochOrder(batch_size)
        # Workers start once and stay for every epoch (one fork, not one per epoch).
        self.loader = torch.utils.data.DataLoader(
            self.images, batch_sampler=self.order, num_workers=workers,
            collate_fn=_stack,
            # torch 1.13 refuses these options without workers (--workers 0).
            **({"persistent_workers": True, "prefetch_factor": 2} if workers > 0 else {}))

    def epoch(self, rng: Optional[np.random.Generator], multiple: int = 1,
              share: Share = Share()) -> Iterator[Batch]:
        """Shuffled and augmented with `rng`; in order and unaugmented
        without. Batch sizes are multiples of `multiple`; `share` of each."""
        self.order.multiple, self.order.share = multiple, share
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
