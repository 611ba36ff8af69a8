"""A versioned model repository on disk: REPOSITORY/NAME/VERSION/, VERSION a
positive integer, each holding metadata.json, model.pt, and model_int8.pt
and weights.pt when there are (the model directory matid-server reads).

publish() copies a model directory in as the next version: the sha256 of
every model file goes into its metadata.json ("sha256": {file: digest}), the
copy is written into a temporary directory beside the versions, flushed to
disk (fsync of every file and of the directory), then renamed into place,
so a reader never sees a half-copied version; a staging directory left by
a publisher that was killed (older than an hour) is removed by the next
publish of that model. A golden set (golden.json and
its images, written by export) is copied and digested too. With a signing
key, the metadata.json bytes written are signed (signing.py). verify() says
what is wrong with a version, or nothing.
"""
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from typing import Dict, List, Optional

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import signing

# weights.pt: the trained weights for `train --resume` (resume.py).
MODEL_FILES = ("model.pt", "model_int8.pt", "weights.pt")
GOLDEN_SET = "golden.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STAGING_PREFIX = ".publishing-"
# A staging directory this old is a killed publisher's, not a running one's.
STALE_STAGING_SECONDS = 3600


class RepositoryError(ValueError):
    """A repository, model name or model directory that cannot be used."""


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions(repository: str, name: str) -> List[int]:
    """The published versions of NAME, lowest first (other entries ignored)."""
    folder = os.path.join(repository, name)
    if not os.path.isdir(folder):
        return []
    return sorted(int(entry) for entry in os.listdir(folder)
                  if entry.isdigit() and not entry.startswith("0"))


def remove_stale_staging(folder: str, now: float) -> List[str]:
    """Removes staging directories in `folder` (a model's) last changed more
    than STALE_STAGING_SECONDS before `now`; returns their names."""
    removed = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if (entry.startswith(STAGING_PREFIX) and os.path.isdir(path)
                and now - os.path.getmtime(path) > STALE_STAGING_SECONDS):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(entry)
    return removed


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_synced(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def golden_files(model_dir: str) -> List[str]:
    """golden.json and the images it lists (plain names beside it), if any:
    the server checks a version against them before it serves."""
    path = os.path.join(model_dir, GOLDEN_SET)
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        golden = json.load(f)
    files = [GOLDEN_SET]
    for image in golden.get("images", []):
        file = image.get("file", "")
        if not file or os.path.basename(file) != file or file.startswith("."):
            raise RepositoryError(f"{path}: {file!r} is not a file name beside golden.json")
        if not os.path.isfile(os.path.join(model_dir, file)):
            raise RepositoryError(f"{path} lists {file}, which is missing")
        files.append(file)
    return files


def publish(model_dir: str, repository: str, name: str,
            signing_key: Optional[Ed25519PrivateKey] = None) -> int:
    """Copies `model_dir` into `repository`/`name` as the next version and
    returns that version; signed with `signing_key` when given."""
    if not NAME_PATTERN.match(name):
        raise RepositoryError(f"model name {name!r} must be letters, digits, '.', '_' or '-' "
                              "(at most 128, not starting with '.', '_' or '-')")
    metadata_path = os.path.join(model_dir, "metadata.json")
    if not os.path.isfile(metadata_path) or not os.path.isfile(os.path.join(model_dir, "model.pt")):
        raise RepositoryError(f"{model_dir} is not a model directory (needs metadata.json and "
                              "model.pt)")
    with open(metadata_path) as f:
        metadata = json.load(f)
    files = [file for file in MODEL_FILES if os.path.isfile(os.path.join(model_dir, file))]
    files += golden_files(model_dir)
    folder = os.path.join(repository, name)
    os.makedirs(folder, exist_ok=True)
    remove_stale_staging(folder, time.time())
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder)
    try:
        digests: Dict[str, str] = {}
        for file in files:
            target = os.path.join(staging, file)
            shutil.copyfile(os.path.join(model_dir, file), target)
            digests[file] = sha256_of(target)
            _fsync(target)
        metadata["sha256"] = digests
        text = json.dumps(metadata, indent=2).encode()
        _write_synced(os.path.join(staging, "metadata.json"), text)
        if signing_key is not None:  # over the very bytes the server reads
            _write_synced(os.path.join(staging, signing.SIGNATURE_FILE),
                          signing.sign(text, signing_key))
        os.chmod(staging, 0o755)
        _fsync(staging)
        while True:  # another publisher may take a number first: take the next
            version = (versions(repository, name) or [0])[-1] + 1
            try:
                os.rename(staging, os.path.join(folder, str(version)))
                break
            except OSError:
                if not os.path.exists(os.path.join(folder, str(version))):
                    raise
        _fsync(folder)
        return version
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)


def verify(version_dir: str) -> List[str]:
    """What is wrong with a published version; empty when it is whole."""
    metadata_path = os.path.join(version_dir, "metadata.json")
    if not os.path.isfile(metadata_path):
        return ["metadata.json is missing"]
    try:
        with open(metadata_path) as f:
            digests = json.load(f).get("sha256")
    except json.JSONDecodeError as error:
        return [f"metadata.json is not JSON: {error}"]
    if not isinstance(digests, dict) or "model.pt" not in digests:
        return ["metadata.json records no sha256 for model.pt"]
    problems = []
    for file, expected in sorted(digests.items()):
        path = os.path.join(version_dir, file)
        if not os.path.isfile(path):
            problems.append(f"{file} is missing")
        elif sha256_of(path) != expected:
            problems.append(f"{file} does not match its sha256 (truncated or changed)")
    return problems
