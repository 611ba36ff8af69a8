#!/usr/bin/python3
"""A plant's photos through model_export (issue 25): camera-size colour
JPEGs of synthetic parts (tests/synthetic_parts.py, 3200x2400), imported,
trained with a torchvision ResNet-18 from a backbone file, exported and
evaluated. No download: the "pretrained" file is a state dict torchvision
makes here.

Checked:
- import decodes at reduced scale, turns EXIF-rotated photos upright, stores
  683x512 JPEGs (short side 512, the aspect kept), and its peak memory stays
  far under one photo per photo
  (measured from the process and its workers);
- a truncated photo is named and skipped (--strict_images stops), the same
  photo in two classes stops prepare naming both paths, a class under
  --min_per_class stops it;
- train --num_layers 18 --pretrained FILE loads the backbone, freezes it for
  the first epoch, and export/evaluate serve the result at --image_shape;
  a file with torchvision's release name whose digest does not match is
  refused.
"""
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import cv2
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(BUILD_DIR, "python"))

from model_export import photo_import, repository  # noqa: E402
from tests import reference_preprocess, synthetic_parts  # noqa: E402
from tests.edge_harness import Process  # noqa: E402

KINDS = ("washer", "hex_nut", "bolt")
PER_CLASS = 8
WIDTH, HEIGHT = 3200, 2400
PHOTO_BYTES = WIDTH * HEIGHT * 3  # one photo decoded whole: 23 MB


def run_model_export(*args: str) -> subprocess.CompletedProcess:
    """`python3 -m model_export ARGS` in a child that prints its own peak RSS
    and its workers' on the last line (KiB)."""
    script = ("import resource, sys\n"
              "from model_export import cli\n"
              "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              f"code = cli.main({list(args)!r})\n"
              "print('rss', base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,\n"
              "      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
              "sys.exit(code)\n")
    return subprocess.run(["/usr/bin/python3", "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def exif_rotated_jpeg(upright: np.ndarray) -> bytes:
    """A JPEG whose pixels are `upright` turned 90 degrees anticlockwise,
    with EXIF orientation 6 (rotate 90 clockwise to view): upright when read."""
    from PIL import Image
    stored = np.ascontiguousarray(np.rot90(upright, 1)[:, :, ::-1])  # BGR -> RGB for PIL
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.fromarray(stored).save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


class PhotoImportLogicTest(unittest.TestCase):
    def test_reduction_keeps_the_short_side_at_least_the_stored_size(self) -> None:
        self.assertEqual(photo_import.reduction_factor(4000, 3000, 512), 4)  # 1000x750
        self.assertEqual(photo_import.reduction_factor(3000, 4000, 224), 8)  # 375x500
        self.assertEqual(photo_import.reduction_factor(1000, 900, 512), 1)
        self.assertEqual(photo_import.reduction_factor(1100, 1030, 512), 2)

    def test_jpeg_size_and_truncation_from_the_bytes(self) -> None:
        ok, data = cv2.imencode(".jpg", np.zeros((30, 50, 3), np.uint8))
        data = data.tobytes()
        self.assertEqual(photo_import.jpeg_size(data), (50, 30))
        self.assertIsNone(photo_import.jpeg_size(b"\x89PNG\r\n\x1a\n"))
        self.assertEqual(photo_import.truncation(data), "")
        self.assertIn("truncated JPEG", photo_import.truncation(data[:len(data) // 2]))


class PhotoPipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.mkdtemp(prefix="matid-photos-")
        cls.source = os.path.join(cls.tmp, "photos")
        synthetic_parts.write_parts_folder(cls.source, KINDS, PER_CLASS, WIDTH, HEIGHT, seed=1)
        cls.test_source = os.path.join(cls.tmp, "test_photos")
        synthetic_parts.write_parts_folder(cls.test_source, KINDS, 2, WIDTH, HEIGHT, seed=4)
        # One washer photo taken with the camera on its side: a white block
        # top left when upright.
        upright = synthetic_parts.part_photo("washer", np.random.default_rng(9), WIDTH, HEIGHT)
        upright[:HEIGHT // 4, :WIDTH // 4] = 255
        with open(os.path.join(cls.source, "washer", "turned.jpg"), "wb") as f:
            f.write(exif_rotated_jpeg(upright))
        # One hex nut photo cut off half-way through copying.
        with open(os.path.join(cls.source, "hex_nut", "hex_nut_000.jpg"), "rb") as f:
            whole = f.read()
        with open(os.path.join(cls.source, "hex_nut", "cut.jpg"), "wb") as f:
            f.write(whole[:len(whole) // 2])

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def prepare(self, work: str, *extra: str) -> subprocess.CompletedProcess:
        return run_model_export("prepare", "--source", self.source, "--test_source",
                                self.test_source, "--work", work, "--min_per_class", "5", *extra)

    def test_1_import_is_streamed_upright_and_names_what_it_skipped(self) -> None:
        work = os.path.join(self.tmp, "work")
        done = self.prepare(work)
        self.assertEqual(done.returncode, 0, done.stderr + done.stdout)
        self.assertIn("cut.jpg: truncated JPEG (no end-of-image marker)", done.stdout)
        self.assertIn("largest 3200x2400", done.stdout)
        self.assertIn("photos/s", done.stdout)
        counts = read_json(os.path.join(work, "manifests", "dataset.json"))["counts"]
        # + turned, - cut; and the test folder's photos
        self.assertEqual(counts["train"] + counts["val"], len(KINDS) * PER_CLASS + 1)
        self.assertEqual(counts["test"], len(KINDS) * 2)
        stored = []
        for split in ("train", "val", "test"):
            with open(os.path.join(work, "manifests", f"{split}.lst")) as f:
                stored += [line.split("\t")[2].strip() for line in f]
        for relative in stored:
            self.assertTrue(relative.endswith(".jpg"), relative)
            image = cv2.imread(os.path.join(work, "data", relative))
            # The short side at 512, the photo's 4:3 kept (3200x2400 -> 683x512).
            self.assertEqual(sorted(image.shape[:2]) + [image.shape[2]], [512, 683, 3], relative)
        # Memory: photos were never decoded whole, let alone all at once.
        base, peak, workers = (int(v) for v in done.stdout.split("rss ")[-1].split())
        growth_bytes = (max(peak, workers) - base) * 1024
        print(f"prepare: peak RSS {max(peak, workers) // 1024} MiB, {growth_bytes >> 20} MiB "
              f"over the interpreter's; {len(stored)} photos of {PHOTO_BYTES >> 20} MiB decoded",
              file=sys.stderr)
        self.assertLess(growth_bytes, 4 * PHOTO_BYTES)
        # The photo taken on its side is stored upright: its white block top left.
        turned = [r for r in stored if "washer" in r]
        corners = [cv2.imread(os.path.join(work, "data", r))[:100, :100].mean() for r in turned]
        self.assertEqual(sum(c > 240 for c in corners), 1, corners)

        with self.subTest("strict"):
            strict = self.prepare(os.path.join(self.tmp, "strict"), "--strict_images", "true")
            self.assertEqual(strict.returncode, 2)
            self.assertIn("cut.jpg: truncated JPEG (no end-of-image marker) (--strict_images)",
                          strict.stderr)

        self.train_export_and_evaluate(work)

    def train_export_and_evaluate(self, work: str) -> None:
        import torch
        import torchvision
        torch.manual_seed(0)
        backbone = os.path.join(self.tmp, "backbone.pth")
        torch.save(torchvision.models.resnet18().state_dict(), backbone)
        out = os.path.join(self.tmp, "model")
        done = run_model_export(
            "train", "--work", work, "--num_layers", "18", "--pretrained", backbone,
            "--image_shape", "3,64,64", "--epochs", "2", "--mini_batch_size", "8",
            "--freeze_backbone_epochs", "1", "--early_stopping", "false", "--max_minutes", "0",
            "--photo_augment", "true", "--learning_rate", "0.01")
        self.assertEqual(done.returncode, 0, done.stderr + done.stdout)
        self.assertIn(f"backbone from {backbone}", done.stdout)
        self.assertIn("frozen for 1 epochs", done.stdout)
        self.assertIn("(backbone frozen)", done.stdout.split("epoch  2/2")[0])
        self.assertNotIn("(backbone frozen)", done.stdout.split("epoch  2/2")[1])
        self.assertIn("read from disk by 2 worker processes, photo augmentation", done.stdout)
        self.assertIn("images/s", done.stdout)
        for stage in ("export", "evaluate"):
            done = run_model_export(stage, "--work", work, "--out", out, "--int8", "true",
                                    "--calibration_images", "16", "--golden_images", "4")
            self.assertEqual(done.returncode, 0, done.stderr + done.stdout)
        metadata = read_json(os.path.join(out, "metadata.json"))
        self.assertEqual((metadata["input"]["width"], metadata["input"]["height"]), (64, 64))
        self.assertEqual(metadata["input"]["color"], "rgb")
        self.assertEqual(metadata["labels"], sorted(KINDS))
        self.assertIn("accuracy", metadata["metrics"])
        self.assertIn("int8_accuracy", metadata["metrics"])

        self.check_served_equals_offline_on_full_size_photos(out)

        # torchvision's release name with other contents: refused, naming the digest.
        fake = os.path.join(self.tmp, "resnet18-f37072fd.pth")
        shutil.copyfile(backbone, fake)
        refused = run_model_export("train", "--work", work, "--num_layers", "18",
                                   "--pretrained", fake, "--epochs", "1")
        self.assertEqual(refused.returncode, 2)
        self.assertIn("does not start with f37072fd", refused.stderr)

    def check_served_equals_offline_on_full_size_photos(self, out: str) -> None:
        """matid-server classifies the 3200x2400 test photos as they are; the
        exported model.pt, fed by the reference preprocessing (with the
        server's reduced JPEG decoding), gives the same answers."""
        import grpc
        import torch
        from matid.v1 import matid_pb2, matid_pb2_grpc
        server_binary = os.path.join(BUILD_DIR, "bin", "matid-server")
        if not os.path.exists(server_binary):
            self.skipTest("matid-server not built")
        repo = os.path.join(self.tmp, "repository")
        repository.publish(out, repo, "parts")
        spec = read_json(os.path.join(out, "metadata.json"))["input"]
        model = torch.jit.load(os.path.join(out, "model.pt"))
        server = Process([server_binary, f"--model_repository={repo}", "--host=127.0.0.1",
                          "--port=0", "--metrics_port=-1", "--threads=1"],
                         r"serving grpc_port=(\d+)", os.path.join(self.tmp, "server.log"))
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{server.match.group(1)}")
            stub = matid_pb2_grpc.ClassifierStub(channel)
            photos = sorted(os.path.join(d, n) for d, _, names in os.walk(self.test_source)
                            for n in names)
            largest_difference = 0.0
            for path in photos:
                data = np.fromfile(path, dtype=np.uint8)
                answer = stub.Classify(matid_pb2.ClassifyRequest(
                    image=matid_pb2.Image(encoded=data.tobytes()), top_k=3), timeout=60)
                x = reference_preprocess.preprocess_encoded(data, spec, reduced_jpeg_decode=True)
                with torch.no_grad():
                    scores = torch.softmax(model(torch.from_numpy(x)[None]), 1)[0].numpy()
                self.assertEqual(answer.predictions[0].index, int(scores.argmax()), path)
                largest_difference = max(largest_difference, abs(
                    answer.predictions[0].score - float(scores.max())))
            channel.close()
        finally:
            code = server.stop()
        self.assertEqual(code, 0)
        print(f"served = offline on {len(photos)} photos of {WIDTH}x{HEIGHT}: top-1 agreement "
              f"1.0, largest score difference {largest_difference:.2e}", file=sys.stderr)
        self.assertLess(largest_difference, 1e-3)

    def test_2_the_same_photo_in_two_classes_is_an_error_naming_both(self) -> None:
        source = os.path.join(self.tmp, "twice")
        synthetic_parts.write_parts_folder(source, KINDS, 5, 640, 480, seed=2)
        shutil.copyfile(os.path.join(source, "bolt", "bolt_001.jpg"),
                        os.path.join(source, "washer", "looks_like_a_washer.jpg"))
        done = run_model_export("prepare", "--source", source, "--work",
                                os.path.join(self.tmp, "work2"), "--min_per_class", "3")
        self.assertEqual(done.returncode, 2)
        self.assertIn("the same photo is in two classes", done.stderr)
        self.assertIn("bolt_001.jpg (bolt)", done.stderr)
        self.assertIn("looks_like_a_washer.jpg (washer)", done.stderr)

    def test_3_a_class_with_too_few_photos_is_an_error(self) -> None:
        source = os.path.join(self.tmp, "few")
        synthetic_parts.write_parts_folder(source, KINDS, 6, 640, 480, seed=3)
        for name in sorted(os.listdir(os.path.join(source, "bolt")))[2:]:
            os.remove(os.path.join(source, "bolt", name))
        done = run_model_export("prepare", "--source", source, "--work",
                                os.path.join(self.tmp, "work3"), "--min_per_class", "4")
        self.assertEqual(done.returncode, 2)
        self.assertIn("'bolt' has 2", done.stderr)
        self.assertIn("--min_per_class is 4", done.stderr)


if __name__ == "__main__":
    unittest.main()
