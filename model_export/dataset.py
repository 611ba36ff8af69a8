"""Dataset import, stratified split and manifests.

A dataset is either Fashion-MNIST (IDX files from Debian's
dataset-fashion-mnist) or a folder with one sub-folder per class. `prepare`
turns either into image files under WORK/data, splits the training part 9:1
(stratified, fixed seed) into train and validation, keeps the test set apart,
and writes manifests in two formats SageMaker understands:

- MXNet RecordIO list (`.lst`): `index<TAB>label<TAB>relative/path`
- JSON lines augmented manifest (`.jsonl`): {"source-ref": path, "class": "3",
  "class-name": "Bag"}

Paths in manifests are relative to WORK/data.
"""
import json
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from . import photo_import
from .progress import Progress

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


class DatasetError(ValueError):
    """The dataset cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class Sample:
    path: str   # relative to the data root
    label: int


def folder_name(label: str) -> str:
    """A file-system-safe folder name for a label ("T-shirt/top" -> "T-shirt_top")."""
    return label.replace("/", "_").replace(" ", "_")


# ---------------------------------------------------------------- manifests

def write_lst(path: str, samples: Sequence[Sample]) -> None:
    with open(path, "w") as f:
        for index, sample in enumerate(samples):
            f.write(f"{index}\t{sample.label}\t{sample.path}\n")


def read_lst(path: str) -> List[Sample]:
    samples = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                raise DatasetError(f"{path}:{number}: expected index, label, path separated by tabs")
            try:
                label = int(float(fields[1]))
            except ValueError:
                raise DatasetError(f"{path}:{number}: label {fields[1]!r} is not a number") from None
            samples.append(Sample(fields[2], label))
    return samples


def write_jsonl(path: str, samples: Sequence[Sample], labels: Sequence[str]) -> None:
    with open(path, "w") as f:
        for sample in samples:
            f.write(json.dumps({"source-ref": sample.path, "class": str(sample.label),
                                "class-name": labels[sample.label]}) + "\n")


def read_jsonl(path: str) -> List[Sample]:
    samples = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                samples.append(Sample(record["source-ref"], int(record["class"])))
            except (ValueError, KeyError) as error:
                raise DatasetError(f"{path}:{number}: bad manifest line ({error})") from None
    return samples


def write_labels(path: str, labels: Sequence[str]) -> None:
    with open(path, "w") as f:
        json.dump(list(labels), f, indent=1)


def read_labels(path: str) -> List[str]:
    with open(path) as f:
        return json.load(f)


# ------------------------------------------------------------------- import

def stratified_split(labels: np.ndarray, validation_fraction: float,
                     seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): each class split by the same fraction."""
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        count = int(round(len(members) * validation_fraction))
        if len(members) > 1:
            count = min(max(count, 1), len(members) - 1)
        validation.extend(members[:count])
        train.extend(members[count:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(validation, dtype=np.int64))


def scan_class_folders(root: str) -> Tuple[List[str], List[Tuple[str, int]]]:
    """Labels (sorted folder names) and (absolute path, label) of every image."""
    if not os.path.isdir(root):
        raise DatasetError(f"{root}: no such directory")
    labels = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if len(labels) < 2:
        raise DatasetError(f"{root}: needs at least two class folders, found {len(labels)}")
    items = []
    for index, label in enumerate(labels):
        files = []
        for directory, _, names in os.walk(os.path.join(root, label)):
            files.extend(os.path.join(directory, n) for n in names
                         if n.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise DatasetError(f"{os.path.join(root, label)}: class {label!r} has no images")
        items.extend((path, index) for path in sorted(files))
    return labels, items


def load_image(path: str, color: str) -> np.ndarray:
    """Reads an image as uint8 HxW (gray) or HxWx3 (BGR); DatasetError if unreadable."""
    if not os.path.exists(path):
        raise DatasetError(f"{path}: missing file")
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: corrupt or not an image")
    return image


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resized to width x height (area when shrinking, as the server does)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = image.shape[1] >= width and image.shape[0] >= height
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


@dataclass
class PreparedDataset:
    data_dir: str
    labels: List[str]
    color: str                      # "gray" or "rgb"
    splits: Dict[str, List[Sample]]  # "train", "val", "test"


def _write_images(data_dir: str, split: str, images: Sequence[np.ndarray],
                  label_ids: Sequence[int], labels: Sequence[str],
                  names: Optional[Sequence[str]] = None) -> List[Sample]:
    samples = []
    for i, (image, label) in enumerate(zip(images, label_ids)):
        name = names[i] if names is not None else f"{split}_{i:05d}.png"
        relative = os.path.join("images", split, folder_name(labels[label]), name)
        absolute = os.path.join(data_dir, relative)
        os.makedirs(os.path.dirname(absolute), exist_ok=True)
        if not cv2.imwrite(absolute, image):
            raise DatasetError(f"{absolute}: cannot write")
        samples.append(Sample(relative, int(label)))
    return samples


# Stored short side of photos from a folder, as in the reference (512; the
# aspect ratio is kept, as SageMaker's `resize` does).
PHOTO_SIZE = 512
# Largest class over smallest class beyond which prepare warns.
IMBALANCE_WARNING = 2.0


def prepare(work_dir: str, source: str = "fashion-mnist", validation_fraction: float = 0.1,
            seed: int = 42, limit_per_class: int = 0, test_source: Optional[str] = None,
            test_fraction: float = 0.1, image_size: Optional[int] = None,
            min_per_class: int = 1, strict: bool = False, workers: int = 2,
            log: Callable[[str], None] = print) -> PreparedDataset:
    """Imports `source` into work_dir/data and writes manifests to work_dir/manifests.

    source: "fashion-mnist" or a folder of class folders. For a folder, the
    test set is `test_source` (same class folders) or, without it, a
    stratified `test_fraction` held out before the train/validation split;
    photos are stored with a short side of `image_size` (default PHOTO_SIZE;
    0 keeps them as they are) by photo_import.py. limit_per_class > 0 keeps only that many
    training images per class.
    """
    data_dir = os.path.join(work_dir, "data")
    manifest_dir = os.path.join(work_dir, "manifests")
    os.makedirs(manifest_dir, exist_ok=True)
    if source == "fashion-mnist":
        labels, color, splits = _prepare_fashion_mnist(data_dir, validation_fraction, seed,
                                                       limit_per_class)
    else:
        labels, color, splits = _prepare_folder(
            data_dir, source, test_source, validation_fraction, test_fraction, seed,
            limit_per_class, PHOTO_SIZE if image_size is None else image_size, min_per_class,
            strict, workers, log)
    for split, samples in splits.items():
        write_lst(os.path.join(manifest_dir, f"{split}.lst"), samples)
        write_jsonl(os.path.join(manifest_dir, f"{split}.jsonl"), samples, labels)
    write_labels(os.path.join(manifest_dir, "labels.json"), labels)
    with open(os.path.join(manifest_dir, "dataset.json"), "w") as f:
        json.dump({"source": source, "color": color, "seed": seed,
                   "validation_fraction": validation_fraction,
                   "counts": {k: len(v) for k, v in splits.items()}}, f, indent=1)
    return PreparedDataset(data_dir, labels, color, splits)


def _keep_per_class(labels: np.ndarray, limit: int, classes: int) -> np.ndarray:
    """Indices of the first `limit` members of each class (all when limit <= 0)."""
    if limit <= 0:
        return np.arange(len(labels))
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:limit] for c in range(classes)]))


def _prepare_fashion_mnist(data_dir: str, validation_fraction: float, seed: int,
                           limit_per_class: int) -> Tuple[List[str], str, Dict[str, List[Sample]]]:
    from . import fashion_mnist
    labels = list(fashion_mnist.LABELS)
    train_images, train_labels = fashion_mnist.load("train")
    test_images, test_labels = fashion_mnist.load("test")
    keep = _keep_per_class(np.asarray(train_labels), limit_per_class, len(labels))
    train_images, train_labels = [train_images[i] for i in keep], np.asarray(train_labels)[keep]
    train_index, val_index = stratified_split(train_labels, validation_fraction, seed)
    splits = {
        "train": _write_images(data_dir, "train", [train_images[i] for i in train_index],
                               train_labels[train_index], labels),
        "val": _write_images(data_dir, "val", [train_images[i] for i in val_index],
                             train_labels[val_index], labels),
        "test": _write_images(data_dir, "test", test_images, test_labels, labels),
    }
    return labels, "gray", splits


def _prepare_folder(data_dir: str, source: str, test_source: Optional[str],
                    validation_fraction: float, test_fraction: float, seed: int,
                    limit_per_class: int, image_size: int, min_per_class: int, strict: bool,
                    workers: int, log: Callable[[str], None]
                    ) -> Tuple[List[str], str, Dict[str, List[Sample]]]:
    """Splits by path first, then imports every photo once (photo_import.py)."""
    labels, items = scan_class_folders(source)
    paths = [path for path, _ in items]
    label_ids = np.array([label for _, label in items])
    _check_min_per_class(labels, label_ids, min_per_class, f"photos in {source}")
    if test_source:
        test_labels_found, test_items = scan_class_folders(test_source)
        unknown = set(test_labels_found) - set(labels)
        if unknown:
            raise DatasetError(f"{test_source}: unknown label(s) {sorted(unknown)}; "
                               f"training labels are {labels}")
        test = [(p, labels.index(test_labels_found[l])) for p, l in test_items]
    else:
        rest, held = stratified_split(label_ids, test_fraction, seed + 1)
        test = [(paths[i], int(label_ids[i])) for i in held]
        paths, label_ids = [paths[i] for i in rest], label_ids[rest]
    keep = _keep_per_class(label_ids, limit_per_class, len(labels))
    paths, label_ids = [paths[i] for i in keep], label_ids[keep]
    train_index, val_index = stratified_split(label_ids, validation_fraction, seed)
    chosen = {"train": [(paths[i], int(label_ids[i])) for i in train_index],
              "val": [(paths[i], int(label_ids[i])) for i in val_index], "test": test}

    jobs = [photo_import.PhotoJob(path, label, os.path.join(
                "images", split, folder_name(labels[label]), f"{split}_{i:05d}"), image_size)
            for split, members in chosen.items() for i, (path, label) in enumerate(members)]
    started = time.monotonic()
    imported = photo_import.import_photos(
        jobs, data_dir, workers, lambda total: Progress("prepare", total, "photos"))
    seconds = max(time.monotonic() - started, 1e-9)
    kept, problems = _screen(imported, labels, strict)
    for problem in problems:
        log(f"prepare: skipped {problem}")
    splits: Dict[str, List[Sample]] = {split: [] for split in chosen}
    for photo in kept:
        splits[photo.relative.split(os.sep)[1]].append(Sample(photo.relative, photo.job.label))
    from_source = splits["train"] + splits["val"] + ([] if test_source else splits["test"])
    _check_min_per_class(labels, np.array([s.label for s in from_source]), min_per_class,
                         f"readable photos in {source}")
    _report_balance(labels, np.array([s.label for s in splits["train"] + splits["val"]]), log)
    largest = max(kept, key=lambda p: p.width * p.height)
    stored = (f"those with a short side over {image_size} stored with a short side of "
              f"{image_size} as JPEG, the others copied" if image_size else "stored as they are")
    log(f"prepare: {len(kept)} photos imported, {len(problems)} skipped, in {seconds:.1f}s "
        f"({len(imported) / seconds:.1f} photos/s, {workers} processes); largest "
        f"{largest.width}x{largest.height}; {stored}")
    color = "gray" if all(photo.gray for photo in kept) else "rgb"
    return labels, color, splits


def _screen(imported: Sequence[photo_import.ImportedPhoto], labels: Sequence[str],
            strict: bool) -> Tuple[List[photo_import.ImportedPhoto], List[str]]:
    """The photos to keep, and why each other one is left out. The same photo
    (by content) in two classes is a DatasetError naming both; a second copy
    in one class (even in another split, where it would leak) is left out;
    with `strict`, an unreadable photo is a DatasetError too."""
    kept, problems, conflicts = [], [], []
    first_by_digest: Dict[str, photo_import.ImportedPhoto] = {}
    for photo in imported:
        if photo.error:
            if strict:
                raise DatasetError(f"{photo.job.source}: {photo.error} (--strict_images)")
            problems.append(f"{photo.job.source}: {photo.error}")
            continue
        first = first_by_digest.setdefault(photo.digest, photo)
        if first is photo:
            kept.append(photo)
        elif first.job.label != photo.job.label:
            conflicts.append(f"{first.job.source} ({labels[first.job.label]}) and "
                             f"{photo.job.source} ({labels[photo.job.label]})")
        else:
            problems.append(f"{photo.job.source}: the same photo as {first.job.source}")
    if conflicts:
        raise DatasetError("the same photo is in two classes: " + "; ".join(conflicts))
    if not kept:
        raise DatasetError("no photo could be imported")
    return kept, problems


def _check_min_per_class(labels: Sequence[str], label_ids: np.ndarray, minimum: int,
                         what: str) -> None:
    counts = np.bincount(label_ids, minlength=len(labels)) if len(label_ids) else \
        np.zeros(len(labels), dtype=np.int64)
    short = [f"{labels[c]!r} has {counts[c]}" for c in range(len(labels)) if counts[c] < minimum]
    if short:
        raise DatasetError(f"too few {what}: {', '.join(short)}; --min_per_class is {minimum}")


def _report_balance(labels: Sequence[str], label_ids: np.ndarray,
                    log: Callable[[str], None]) -> None:
    counts = np.bincount(label_ids, minlength=len(labels))
    log("prepare: training photos per class: " +
        ", ".join(f"{labels[c]} {counts[c]}" for c in range(len(labels))))
    most, least = int(np.argmax(counts)), int(np.argmin(counts))
    if counts[least] > 0 and counts[most] / counts[least] > IMBALANCE_WARNING:
        log(f"prepare: warning: classes are imbalanced: {labels[most]!r} has {counts[most]}, "
            f"{labels[least]!r} {counts[least]} ({counts[most] / counts[least]:.1f}x); the "
            f"model will lean to the larger classes: add photos of the smaller ones")


def load_prepared(work_dir: str) -> PreparedDataset:
    manifest_dir = os.path.join(work_dir, "manifests")
    labels_path = os.path.join(manifest_dir, "labels.json")
    if not os.path.exists(labels_path):
        raise DatasetError(f"{labels_path} missing: run the prepare stage first")
    labels = read_labels(labels_path)
    with open(os.path.join(manifest_dir, "dataset.json")) as f:
        color = json.load(f)["color"]
    splits = {}
    for split in ("train", "val", "test"):
        splits[split] = read_lst(os.path.join(manifest_dir, f"{split}.lst"))
        for sample in splits[split]:
            if not 0 <= sample.label < len(labels):
                raise DatasetError(f"{split}.lst: label {sample.label} of {sample.path} is unknown "
                                   f"(there are {len(labels)} labels)")
    return PreparedDataset(os.path.join(work_dir, "data"), labels, color, splits)


def load_arrays(data_dir: str, samples: Sequence[Sample], color: str,
                size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Images as uint8 [N, H, W, C] resized to size=(width, height), labels [N]."""
    width, height = size
    channels = 1 if color == "gray" else 3
    images = np.empty((len(samples), height, width, channels), dtype=np.uint8)
    for i, sample in enumerate(samples):
        image = fit(load_image(os.path.join(data_dir, sample.path), color), width, height)
        if channels == 3:
            image = image[:, :, ::-1]  # BGR -> RGB, the model's channel order
        images[i] = image.reshape(height, width, channels)
    return images, np.array([s.label for s in samples], dtype=np.int64)
