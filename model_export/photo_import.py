"""Import of photos of any size (camera frames of 4000x3000 and more) into
the stored images training reads.

Memory grows with the number of worker processes, not with the number or
size of the photos: each photo is read once (its bytes hashed), decoded at
a reduced scale when it is at least twice the stored size (JPEG DCT
scaling: OpenCV's IMREAD_REDUCED_*, so a 4000x3000 JPEG is decoded as
1000x750 for 512), turned upright by its EXIF orientation (OpenCV applies
it), resized so that its short side is `image_size` (SageMaker's `resize`:
the aspect ratio is kept, so that rotating it in training turns the part,
not a squashed copy of it; training and the server stretch it to the
model's input afterwards, alike) and stored as JPEG. An image whose short
side is no larger than the stored size is copied byte for byte. Nothing is kept in memory but one small record per
photo.

A photo that cannot be read is reported with the reason and skipped, or
stops the import with `strict`. Used from one thread; the work runs in
`workers` processes.
"""
import hashlib
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .progress import Progress

JPEG_QUALITY = 95
# Reduction factors JPEG decoding offers, largest first, with their flags.
REDUCED_COLOR = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                 (2, cv2.IMREAD_REDUCED_COLOR_2))


@dataclass(frozen=True)
class PhotoJob:
    source: str     # absolute path of the photo
    label: int
    relative: str   # where it goes under the data folder, without extension
    image_size: int  # stored short side; 0 keeps every image as it is


@dataclass(frozen=True)
class ImportedPhoto:
    job: PhotoJob
    relative: str = ""   # stored path under the data folder ("" when skipped)
    digest: str = ""     # sha256 of the photo's bytes
    gray: bool = False   # no colour in it
    width: int = 0       # upright size of the photo as taken
    height: int = 0
    error: str = ""      # why it was skipped ("" when imported)


def reduction_factor(width: int, height: int, stored: int) -> int:
    """The largest JPEG decoding reduction (8, 4, 2 or 1) that still leaves
    the photo's short side at least `stored` pixels."""
    for factor, _ in REDUCED_COLOR:
        if min(width, height) // factor >= stored:
            return factor
    return 1


def jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) from a JPEG's frame header, before EXIF orientation;
    None when `data` is not a JPEG or has no frame header."""
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        # SOF0..SOF15 carry the size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[at + 5:at + 7], "big")
            width = int.from_bytes(data[at + 7:at + 9], "big")
            return width, height
        at += 2 + length
    return None


def truncation(data: bytes) -> str:
    """Why `data` is a truncated JPEG or PNG ("" when it looks whole).
    OpenCV decodes a truncated JPEG without an error, grey at the bottom."""
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        return "truncated JPEG (no end-of-image marker)"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        return "truncated PNG (no IEND chunk)"
    return ""


def stored_size(width: int, height: int, short_side: int) -> Tuple[int, int]:
    """(width, height) with the short side `short_side`, the aspect kept."""
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode(data: bytes, stored: int) -> np.ndarray:
    """BGR image, upright, decoded at the largest reduction that keeps it at
    least `stored` pixels on its short side (for JPEG; others decode whole)."""
    size = jpeg_size(data)
    flag = cv2.IMREAD_COLOR
    if size is not None and stored > 0:
        factor = reduction_factor(size[0], size[1], stored)
        flag = dict(REDUCED_COLOR).get(factor, cv2.IMREAD_COLOR)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if image is None:
        raise ValueError("not an image OpenCV can decode")
    return image


def is_gray(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[:, :, 0], image[:, :, 1]) and
                np.array_equal(image[:, :, 1], image[:, :, 2]))


def import_photo(job: PhotoJob, data_dir: str) -> ImportedPhoto:
    """Reads, checks, shrinks and stores one photo (in a worker process)."""
    try:
        with open(job.source, "rb") as f:
            data = f.read()
    except OSError as error:
        return ImportedPhoto(job, error=f"cannot read ({error.strerror})")
    digest = hashlib.sha256(data).hexdigest()
    cut = truncation(data)
    if cut:
        return ImportedPhoto(job, digest=digest, error=cut)
    try:
        image = decode(data, job.image_size)
    except (ValueError, cv2.error) as error:
        return ImportedPhoto(job, digest=digest, error=str(error))
    height, width = image.shape[:2]
    taken_w, taken_h = jpeg_size(data) or (width, height)  # as taken, not as decoded
    if (taken_w > taken_h) != (width > height):  # EXIF turned it
        taken_w, taken_h = taken_h, taken_w
    shrink = job.image_size > 0 and min(width, height) > job.image_size
    if shrink:
        relative = job.relative + ".jpg"
        stored = cv2.resize(image, stored_size(width, height, job.image_size),
                            interpolation=cv2.INTER_AREA)
        destination = os.path.join(data_dir, relative)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        if not cv2.imwrite(destination, stored, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            return ImportedPhoto(job, digest=digest, error=f"cannot write {destination}")
    else:
        relative = job.relative + os.path.splitext(job.source)[1].lower()
        destination = os.path.join(data_dir, relative)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.copyfile(job.source, destination)
    return ImportedPhoto(job, relative, digest, is_gray(image), taken_w, taken_h)


_DATA_DIR = ""


def _worker_init(data_dir: str) -> None:
    global _DATA_DIR
    _DATA_DIR = data_dir
    cv2.setNumThreads(1)


def _work(job: PhotoJob) -> ImportedPhoto:
    return import_photo(job, _DATA_DIR)


def import_photos(jobs: Sequence[PhotoJob], data_dir: str, workers: int = 2,
                  progress: Optional[Callable[[int], Progress]] = None) -> List[ImportedPhoto]:
    """Imports every job (in order) with `workers` processes (1: in this one)."""
    bar = progress(len(jobs)) if progress else None
    results: List[ImportedPhoto] = []

    def collect(done: Iterable[ImportedPhoto]) -> None:
        for photo in done:
            results.append(photo)
            if bar:
                bar.advance(1)

    if workers <= 1 or len(jobs) < 8:
        _worker_init(data_dir)
        collect(_work(job) for job in jobs)
    else:
        context = multiprocessing.get_context("fork")
        with context.Pool(workers, _worker_init, (data_dir,)) as pool:
            collect(pool.imap(_work, jobs, chunksize=4))
    if bar:
        bar.finish()
    return results
