#!/usr/bin/python3
"""Tests of the training pipeline (model_export/) on small synthetic data.

Run by ctest with Debian's /usr/bin/python3. The end-to-end test runs every
stage on 240 generated images in well under a minute; when MATID_BUILD_DIR
has matid-server and matid-classify, it also serves the exported model and
checks that the served predictions agree with the offline ones.
"""
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Any

import cv2
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))

from model_export import augment  # noqa: E402
from model_export import dataset  # noqa: E402
from model_export import loader  # noqa: E402
from model_export import metrics  # noqa: E402
from model_export import progress  # noqa: E402
from model_export import repository  # noqa: E402
from model_export import resume  # noqa: E402
from model_export import train  # noqa: E402
from model_export.cli import main as cli_main  # noqa: E402

BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(HERE, "..", "build"))


# The end-to-end test's training on make_shapes_dataset(per_class=80);
# bench/bf16_accuracy.py measures the same run under fp32 and bf16.
END_TO_END_TRAINING = ("--epochs", "8", "--lr_scheduler_step", "6", "--early_stopping", "false",
                       "--mini_batch_size", "16", "--widths", "8,16", "--blocks", "1,1",
                       "--calibration_images", "32", "--augment_fraction", "0.2",
                       "--rotate90", "true")


def make_shapes_dataset(root: str, per_class: int = 50, size: int = 20, seed: int = 0,
                        names: tuple = ("circle", "cross", "square")) -> None:
    """Classes of gray pictures a small CNN learns quickly (circle, cross,
    square; ring too)."""
    rng = np.random.default_rng(seed)
    for name in names:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 40, (size, size), dtype=np.uint8)
            c = int(rng.integers(7, size - 7))
            r = int(rng.integers(3, 6))
            value = int(rng.integers(170, 256))
            if name == "circle":
                cv2.circle(image, (c, c), r, value, -1)
            elif name == "ring":
                cv2.circle(image, (c, c), r, value, 1)
            elif name == "square":
                cv2.rectangle(image, (c - r, c - r), (c + r, c + r), value, -1)
            else:
                cv2.line(image, (c - r, c), (c + r, c), value, 2)
                cv2.line(image, (c, c - r), (c, c + r), value, 2)
            cv2.imwrite(os.path.join(root, name, f"{name}_{i:03d}.png"), image)


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def run_cli(*args: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli_main(list(args))


class TempDirTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="matid-model-export-")

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class EndToEndTest(TempDirTest):
    def test_every_stage_on_a_synthetic_dataset(self) -> None:
        source = os.path.join(self.tmp, "source")
        work = os.path.join(self.tmp, "work")
        out = os.path.join(self.tmp, "model")
        make_shapes_dataset(source, per_class=80)
        code = run_cli("all", "--source", source, "--work", work, "--out", out,
                       *END_TO_END_TRAINING, "--name", "shapes",
                       "--repository", os.path.join(self.tmp, "repository"))
        self.assertEqual(code, 0)
        # `all --repository` published the finished model as version 1.
        published = os.path.join(self.tmp, "repository", "shapes", "1")
        self.assertEqual(repository.verify(published), [])

        manifests = os.path.join(work, "manifests")
        train_samples = dataset.read_lst(os.path.join(manifests, "train.lst"))
        val_samples = dataset.read_lst(os.path.join(manifests, "val.lst"))
        test_samples = dataset.read_lst(os.path.join(manifests, "test.lst"))
        augmented = dataset.read_lst(os.path.join(manifests, "train_augmented.lst"))
        self.assertEqual(len(train_samples) + len(val_samples) + len(test_samples), 240)
        # augmented copies only in the training manifest
        copies = [s for s in augmented if s.path.startswith("augmented/")]
        self.assertEqual(len(copies), round(len(train_samples) * 0.2) * 3)  # fliph, rot90, noise
        for split in (val_samples, test_samples):
            self.assertFalse(any(s.path.startswith("augmented/") for s in split))

        with open(os.path.join(work, "checkpoints", "training_log.csv")) as f:
            self.assertEqual(len(f.readlines()), 1 + 8)

        metadata = read_json(os.path.join(out, "metadata.json"))
        self.assertEqual(metadata["labels"], ["circle", "cross", "square"])
        self.assertEqual(metadata["input"]["width"], 20)
        self.assertEqual(metadata["input"]["color"], "gray")
        self.assertEqual(metadata["qengine"], "onednn")
        # Chance is 0.33. With batches of 16 (12 steps an epoch; 64 gave 3, and
        # seeds 0-3 then ended at 0.54-0.96 in fp32 and bf16 alike), seeds 0-3
        # ended at 0.83-1.0 under both fp32 and bf16 autocast (issue 30's
        # note): the bar holds whichever numeric path --bf16 auto picks.
        self.assertGreater(metadata["metrics"]["accuracy"], 0.7)
        self.assertIn("int8_top1_agreement_with_fp32", metadata["metrics"])
        for name in ("model.pt", "model_int8.pt"):
            self.assertTrue(os.path.exists(os.path.join(out, name)), name)
        # The golden set the server checks a new version against, published with digests.
        golden = read_json(os.path.join(out, "golden.json"))
        self.assertEqual(len(golden["images"]), min(32, len(val_samples)))
        self.assertLessEqual(golden["min_accuracy"], 0.9)  # its own accuracy on them - 0.1
        digested = read_json(os.path.join(published, "metadata.json"))["sha256"]
        self.assertIn("golden.json", digested)
        self.assertIn(golden["images"][0]["file"], digested)
        evaluation = os.path.join(work, "evaluation")
        for name in ("report.md", "metrics.json", "confusion_matrix.png", "roc_curves.png"):
            self.assertTrue(os.path.exists(os.path.join(evaluation, name)), name)

        self.check_served_predictions_agree(work, out, os.path.dirname(os.path.dirname(published)))

    def check_served_predictions_agree(self, work: str, out: str, repository_dir: str) -> None:
        """Serves the published version from the repository (so it passed its
        golden images) and checks served predictions against offline ones."""
        server_binary = os.path.join(BUILD_DIR, "bin", "matid-server")
        classify_binary = os.path.join(BUILD_DIR, "bin", "matid-classify")
        if not (os.path.exists(server_binary) and os.path.exists(classify_binary)):
            self.skipTest("matid-server not built")
        server = subprocess.Popen(
            [server_binary, f"--model_repository={repository_dir}", "--host=127.0.0.1", "--port=0",
             "--metrics_port=-1", "--threads=1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            port = None
            for line in server.stdout:
                match = re.search(r"serving grpc_port=(\d+)", line)
                if match:
                    port = match.group(1)
                    break
            self.assertIsNotNone(port, "server did not start")
            predictions = os.path.join(self.tmp, "served.jsonl")
            subprocess.run([classify_binary, f"--server=127.0.0.1:{port}", "--mode=batch",
                            "--top_k=3", "--format=jsonl", f"--output={predictions}",
                            os.path.join(work, "data", "images", "test")],
                           check=True, capture_output=True, timeout=120)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        report_dir = os.path.join(self.tmp, "report")
        self.assertEqual(run_cli("evaluate", "--work", work, "--out", out,
                                 "--predictions", predictions, "--report_dir", report_dir), 0)
        served = read_json(os.path.join(report_dir, "served", "metrics.json"))
        self.assertTrue(served["agrees_with_offline_model"], served)
        offline = read_json(os.path.join(report_dir, "metrics.json"))
        self.assertEqual(served["accuracy"], offline["accuracy"])


class ResumeTest(TempDirTest):
    """train --resume: on from an exported model directory, with a new class."""

    SMALL = ("--epochs", "2", "--early_stopping", "false", "--mini_batch_size", "16",
             "--widths", "8,16", "--blocks", "1,1", "--calibration_images", "16",
             "--augment_fraction", "0", "--int8", "false")

    def test_head_rows_follow_the_labels_by_name(self) -> None:
        self.assertEqual(resume.head_rows(["circle", "cross", "square"],
                                          ["circle", "cross", "ring", "square"]),
                         [0, 1, None, 2])
        self.assertEqual(resume.head_rows(["a", "b"], ["b"]), [1])
        self.assertEqual(resume.describe_change(["a", "b"], ["b", "c"]),
                         "1 classes kept, new: c, no longer trained: a")

    def test_a_new_class_keeps_what_the_model_knew(self) -> None:
        first, second = os.path.join(self.tmp, "first"), os.path.join(self.tmp, "second")
        make_shapes_dataset(os.path.join(self.tmp, "three"), per_class=30)
        self.assertEqual(run_cli("all", "--source", os.path.join(self.tmp, "three"), "--work",
                                 os.path.join(self.tmp, "w1"), "--out", first, *self.SMALL), 0)
        make_shapes_dataset(os.path.join(self.tmp, "four"), per_class=30, seed=1,
                            names=("circle", "cross", "ring", "square"))
        # A rate of 0 leaves every learned parameter as it was, so what --resume
        # loaded can be compared exactly; square's head row moves from 2 to 3.
        self.assertEqual(run_cli("all", "--source", os.path.join(self.tmp, "four"), "--work",
                                 os.path.join(self.tmp, "w2"), "--out", second, "--resume", first,
                                 "--learning_rate", "0", *self.SMALL), 0)
        before = resume.read(first)
        after = resume.read(second)
        self.assertEqual(after.labels, ["circle", "cross", "ring", "square"])
        self.assertEqual((after.widths, after.blocks, after.mean, after.std),
                         (before.widths, before.blocks, before.mean, before.std))
        parameters = [n for n in before.state_dict if not n.startswith("fc.")
                      and "running_" not in n and "num_batches" not in n]
        self.assertGreater(len(parameters), 4)
        for name in parameters:
            self.assertTrue(torch.equal(before.state_dict[name], after.state_dict[name]), name)
        old, new = before.state_dict["fc.weight"], after.state_dict["fc.weight"]
        for old_row, new_row in ((0, 0), (1, 1), (2, 3)):
            self.assertTrue(torch.equal(old[old_row], new[new_row]), (old_row, new_row))
        self.assertFalse(any(torch.equal(new[2], row) for row in old))  # ring's row is new
        metadata = read_json(os.path.join(second, "metadata.json"))
        self.assertEqual(metadata["input"]["mean"], [round(m, 6) for m in before.mean])

    def test_what_cannot_be_resumed_is_named(self) -> None:
        source, out = os.path.join(self.tmp, "three"), os.path.join(self.tmp, "model")
        make_shapes_dataset(source, per_class=10)
        os.makedirs(out)
        for extra, expected in ((("--resume", out), "no weights.pt there"),
                                (("--resume", os.path.join(self.tmp, "none")), "no weights.pt")):
            done = subprocess.run(
                [sys.executable, "-m", "model_export", "train", "--work",
                 os.path.join(self.tmp, "w"), *extra], cwd=os.path.dirname(HERE),
                capture_output=True, text=True, timeout=120)
            self.assertEqual(done.returncode, 2, done.stderr)
            self.assertIn(f"--resume {extra[1]}: {expected}", done.stderr)
        resume.save(os.path.join(out, resume.WEIGHTS_FILE),
                    {"state_dict": {}, "num_layers": 0, "widths": [8, 16], "blocks": [1, 1],
                     "channels": 1, "input_size": 20, "mean": [0.5], "std": [0.2]}, ["a"])
        done = subprocess.run(
            [sys.executable, "-m", "model_export", "train", "--work", os.path.join(self.tmp, "w"),
             "--resume", out, "--num_layers", "18"], cwd=os.path.dirname(HERE),
            capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn("--num_layers 18 differs from the resumed model's 0", done.stderr)


class SageMakerContractTest(TempDirTest):
    """`python3 -m model_export train` inside a SageMaker training job: the
    SM_* variables and /opt/ml's files, set up in a temporary folder."""

    HYPERPARAMETERS = {"num_classes": "3", "num_training_samples": "72", "epochs": "2",
                       "mini_batch_size": "16", "learning_rate": "0.1", "widths": "8,16",
                       "blocks": "1,1", "early_stopping": "false", "int8": "false",
                       "augment_fraction": "0", "calibration_images": "16"}

    def job(self, hyperparameters: dict) -> tuple:
        """Runs a job on a fresh /opt/ml; (process, environment)."""
        ml = tempfile.mkdtemp(prefix="opt-ml-", dir=self.tmp)
        env = {**os.environ, "SM_CHANNEL_TRAIN": os.path.join(ml, "input/data/train"),
               "SM_CHANNEL_VALIDATION": os.path.join(ml, "input/data/validation"),
               "SM_MODEL_DIR": os.path.join(ml, "model"),
               "SM_OUTPUT_DATA_DIR": os.path.join(ml, "output/data"),
               "SM_OUTPUT_DIR": os.path.join(ml, "output"),
               "SM_INPUT_CONFIG_DIR": os.path.join(ml, "input/config")}
        make_shapes_dataset(env["SM_CHANNEL_TRAIN"], per_class=30)
        make_shapes_dataset(env["SM_CHANNEL_VALIDATION"], per_class=10, seed=5)
        os.makedirs(env["SM_INPUT_CONFIG_DIR"])
        with open(os.path.join(env["SM_INPUT_CONFIG_DIR"], "hyperparameters.json"), "w") as f:
            json.dump(hyperparameters, f)
        done = subprocess.run([sys.executable, "-m", "model_export", "train"], env=env,
                              cwd=os.path.dirname(HERE), capture_output=True, text=True,
                              timeout=600)
        return done, env

    def test_a_job_trains_from_its_channels_into_its_model_dir(self) -> None:
        done, env = self.job(self.HYPERPARAMETERS)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("num_training_samples=72 is not used", done.stdout)
        model_dir = env["SM_MODEL_DIR"]
        for name in ("model.pt", "metadata.json", resume.WEIGHTS_FILE, "golden.json"):
            self.assertTrue(os.path.exists(os.path.join(model_dir, name)), name)
        self.assertFalse(os.path.exists(os.path.join(model_dir, "model_int8.pt")))
        metadata = read_json(os.path.join(model_dir, "metadata.json"))
        self.assertEqual(metadata["labels"], ["circle", "cross", "square"])
        self.assertEqual(metadata["metrics"]["test_images"], 30)  # the validation channel
        report = os.path.join(env["SM_OUTPUT_DATA_DIR"], "evaluation")
        self.assertTrue(os.path.exists(os.path.join(report, "confusion_matrix.png")))
        self.assertEqual(resume.read(model_dir).widths, [8, 16])
        self.assertFalse(os.path.exists(os.path.join(env["SM_OUTPUT_DIR"], "failure")))

    def test_a_job_that_cannot_run_says_why_in_the_failure_file(self) -> None:
        for change, expected in (({"num_classes": "4"}, "--expect_classes (num_classes) is 4"),
                                 ({"colour": "red"}, "hyperparameter colour=red is neither"),
                                 ({"use_pretrained_model": "1"}, "needs a channel named "
                                                                 "'pretrained'")):
            done, env = self.job({**self.HYPERPARAMETERS, **change})
            self.assertEqual(done.returncode, 2, done.stdout)
            self.assertIn(expected, done.stderr)
            with open(os.path.join(env["SM_OUTPUT_DIR"], "failure")) as f:
                self.assertIn(expected, f.read())


class DistributedTest(TempDirTest):
    """torchrun --nproc_per_node 2 -m model_export train: DistributedDataParallel
    over gloo trains the model that one process training the same steps
    does (each batch in the same two shares: --ghost_shares 2)."""

    TRAINING = ("--epochs", "2", "--early_stopping", "false", "--mini_batch_size", "16",
                "--widths", "8,16", "--blocks", "1,1", "--bf16", "false", "--threads", "1",
                "--learning_rate", "0.05")

    def test_two_processes_train_what_one_process_does(self) -> None:
        source, work = os.path.join(self.tmp, "source"), os.path.join(self.tmp, "work")
        make_shapes_dataset(source, per_class=40)
        self.assertEqual(run_cli("prepare", "--source", source, "--work", work), 0)
        checkpoints = os.path.join(work, "checkpoints")
        self.assertEqual(run_cli("train", "--work", work, *self.TRAINING, "--ghost_shares", "2"),
                         0)
        one = torch.load(os.path.join(checkpoints, "best.pt"))
        with open(os.path.join(checkpoints, "training_log.csv")) as f:
            one_log = [line.split(",")[:5] for line in f]
        done = subprocess.run(
            # --redirects 1 --tee 1: Debian 12's torchrun fails without (distributed.py).
            ["torchrun", "--standalone", "--nproc_per_node", "2", "--redirects", "1", "--tee", "1",
             "-m", "model_export", "train",
             "--work", work, *self.TRAINING], cwd=os.path.dirname(HERE),
            capture_output=True, text=True, timeout=600)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        self.assertIn("2 processes (DistributedDataParallel)", done.stdout)
        self.assertEqual(done.stdout.count("epoch  1/2"), 1)  # rank 0 speaks for both
        two = torch.load(os.path.join(checkpoints, "best.pt"))
        with open(os.path.join(checkpoints, "training_log.csv")) as f:
            two_log = [line.split(",")[:5] for line in f]
        self.assertEqual(len(two_log), 3)
        self.assertEqual(two["epoch"], one["epoch"])
        compared = 0
        for name, tensor in one["state_dict"].items():
            if name.endswith("num_batches_tracked"):
                continue  # counts forwards: two per step in one process, one per rank
            self.assertTrue(torch.allclose(tensor, two["state_dict"][name], atol=1e-5, rtol=1e-4),
                            f"{name}: max difference "
                            f"{(tensor - two['state_dict'][name]).abs().max():.3g}")
            compared += 1
        self.assertGreater(compared, 20)
        # Losses and accuracies per epoch agree to the digits logged, short of the last.
        for a, b in zip(one_log[1:], two_log[1:]):
            for x, y in zip(a[1:], b[1:]):
                self.assertAlmostEqual(float(x), float(y), places=3)


class RepositoryTest(TempDirTest):
    """`publish` and `verify` on a model directory of small stand-in files."""

    def make_model_dir(self, with_int8: bool = True) -> str:
        model_dir = tempfile.mkdtemp(prefix="model-", dir=self.tmp)
        with open(os.path.join(model_dir, "metadata.json"), "w") as f:
            json.dump({"name": "parts", "labels": ["a", "b"]}, f)
        for name in ["model.pt"] + (["model_int8.pt"] if with_int8 else []):
            with open(os.path.join(model_dir, name), "wb") as f:
                f.write(os.urandom(3000))
        return model_dir

    def publish_with_cli(self, model_dir: str, name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "model_export", "publish", "--model_dir", model_dir,
             "--repository", os.path.join(self.tmp, "repo"), "--name", name],
            cwd=os.path.dirname(HERE), capture_output=True, text=True, timeout=120)

    def test_each_publish_is_the_next_version_with_digests_and_nothing_half_copied(self) -> None:
        model_dir = self.make_model_dir()
        repo = os.path.join(self.tmp, "repo")
        os.makedirs(os.path.join(repo, "parts", "notes"))  # not a version: ignored
        first = self.publish_with_cli(model_dir, "parts")
        self.assertEqual((first.returncode, first.stdout), (0, "1\n"), first.stderr)
        self.assertEqual(repository.publish(model_dir, repo, "parts"), 2)
        self.assertEqual(repository.versions(repo, "parts"), [1, 2])
        self.assertEqual(sorted(os.listdir(os.path.join(repo, "parts"))), ["1", "2", "notes"])
        version = os.path.join(repo, "parts", "2")
        metadata = read_json(os.path.join(version, "metadata.json"))
        self.assertEqual(metadata["labels"], ["a", "b"])
        for name in ("model.pt", "model_int8.pt"):
            self.assertEqual(metadata["sha256"][name],
                             repository.sha256_of(os.path.join(model_dir, name)))
        self.assertEqual(repository.verify(version), [])

    def test_a_killed_publishers_staging_is_removed_a_running_ones_kept(self) -> None:
        repo = os.path.join(self.tmp, "repo")
        folder = os.path.join(repo, "parts")
        for name in (".publishing-killed", ".publishing-running"):
            os.makedirs(os.path.join(folder, name))
            with open(os.path.join(folder, name, "model.pt"), "wb") as f:
                f.write(b"half a copy")
        an_hour_and_more = time.time() - repository.STALE_STAGING_SECONDS - 60
        os.utime(os.path.join(folder, ".publishing-killed"), (an_hour_and_more, an_hour_and_more))
        self.assertEqual(repository.publish(self.make_model_dir(), repo, "parts"), 1)
        self.assertEqual(sorted(os.listdir(folder)), [".publishing-running", "1"])

    def test_verify_names_a_truncated_or_missing_file(self) -> None:
        repo = os.path.join(self.tmp, "repo")
        version = os.path.join(repo, "parts", str(repository.publish(self.make_model_dir(), repo,
                                                                     "parts")))
        with open(os.path.join(version, "model.pt"), "r+b") as f:
            f.truncate(1000)
        os.remove(os.path.join(version, "model_int8.pt"))
        self.assertEqual(repository.verify(version),
                         ["model.pt does not match its sha256 (truncated or changed)",
                          "model_int8.pt is missing"])
        os.remove(os.path.join(version, "metadata.json"))
        self.assertEqual(repository.verify(version), ["metadata.json is missing"])

    def test_server_refuses_a_version_whose_file_was_truncated(self) -> None:
        server_binary = os.path.join(BUILD_DIR, "bin", "matid-server")
        test_model = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD_DIR, "test_model"))
        if not (os.path.exists(server_binary) and os.path.isdir(test_model)):
            self.skipTest("matid-server or the test model not built")
        repo = os.path.join(self.tmp, "repo")
        version = os.path.join(repo, "tiny", str(repository.publish(test_model, repo, "tiny")))
        with open(os.path.join(version, "model.pt"), "r+b") as f:
            f.truncate(os.path.getsize(f.name) // 2)
        started = subprocess.run([server_binary, f"--model_dir={version}", "--host=127.0.0.1",
                                  "--port=0", "--metrics_port=-1"],
                                 capture_output=True, text=True, timeout=60)
        self.assertNotEqual(started.returncode, 0)
        self.assertIn("model.pt does not match the sha256", started.stderr + started.stdout)

    def test_bad_sources_and_names_are_refused_and_leave_nothing(self) -> None:
        not_a_model = os.path.join(self.tmp, "empty")
        os.makedirs(not_a_model)
        refused = self.publish_with_cli(not_a_model, "parts")
        self.assertEqual(refused.returncode, 2)
        self.assertIn("not a model directory", refused.stderr)
        for name in ("../escape", ".hidden", "a/b", ""):
            with self.assertRaises(repository.RepositoryError, msg=name):
                repository.publish(self.make_model_dir(), os.path.join(self.tmp, "repo"), name)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "repo")))
        # Without int8, only model.pt is recorded.
        version = repository.publish(self.make_model_dir(with_int8=False),
                                     os.path.join(self.tmp, "repo"), "solo")
        metadata = read_json(os.path.join(self.tmp, "repo", "solo", str(version), "metadata.json"))
        self.assertEqual(list(metadata["sha256"]), ["model.pt"])


class AugmentTest(unittest.TestCase):
    def setUp(self) -> None:
        self.gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
        self.rgb = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)

    def test_flips_are_exact_mirrors(self) -> None:
        np.testing.assert_array_equal(augment.flip_horizontal(self.gray),
                                      [[3, 2, 1, 0], [7, 6, 5, 4], [11, 10, 9, 8]])
        np.testing.assert_array_equal(augment.flip_vertical(self.gray),
                                      [[8, 9, 10, 11], [4, 5, 6, 7], [0, 1, 2, 3]])
        np.testing.assert_array_equal(augment.flip_horizontal(augment.flip_horizontal(self.rgb)),
                                      self.rgb)

    def test_rotate_90_is_exact_and_four_make_identity(self) -> None:
        np.testing.assert_array_equal(augment.rotate(self.gray, 90), np.rot90(self.gray))
        image = self.rgb
        for _ in range(4):
            image = augment.rotate(image, 90)
        np.testing.assert_array_equal(image, self.rgb)

    def test_rotate_45_keeps_size_centre_and_blackens_corners(self) -> None:
        image = np.full((21, 21), 200, dtype=np.uint8)
        rotated = augment.rotate(image, 45)
        self.assertEqual(rotated.shape, image.shape)
        self.assertEqual(rotated[10, 10], 200)
        self.assertEqual(rotated[0, 0], 0)

    def test_gaussian_noise_has_the_requested_statistics(self) -> None:
        image = np.full((200, 200), 128, dtype=np.uint8)
        noisy = augment.gaussian_noise(image, 10.0, np.random.default_rng(1))
        difference = noisy.astype(np.float64) - 128
        self.assertLess(abs(difference.mean()), 0.2)
        self.assertAlmostEqual(difference.std(), 10.0, delta=0.3)
        self.assertEqual(noisy.dtype, np.uint8)

    def test_saturation_scales_one_channel_and_clips(self) -> None:
        image = np.full((2, 2, 3), 100, dtype=np.uint8)
        image[0, 0, 2] = 200
        out = augment.saturate_channel(image, "blue", 1.5)
        self.assertEqual(out[1, 1, 2], 150)
        self.assertEqual(out[0, 0, 2], 255)  # clipped
        np.testing.assert_array_equal(out[..., :2], image[..., :2])
        np.testing.assert_array_equal(augment.saturate_channel(self.gray, "red"), self.gray)

    def test_functions_never_change_their_input(self) -> None:
        before = self.rgb.copy()
        for transform in (augment.flip_horizontal, augment.flip_vertical,
                          lambda im: augment.rotate(im, 45),
                          lambda im: augment.saturate_channel(im, "red")):
            transform(self.rgb)
        np.testing.assert_array_equal(self.rgb, before)


    def test_random_crop_shifts_each_image_within_the_padding(self) -> None:
        images = np.random.default_rng(0).integers(1, 256, (64, 6, 5, 1), dtype=np.uint8)
        before = images.copy()
        cropped = augment.random_crop(images, 2, np.random.default_rng(1))
        self.assertEqual(cropped.shape, images.shape)
        np.testing.assert_array_equal(images, before)
        offsets = set()
        for original, out in zip(images, cropped):
            padded = np.pad(original, ((2, 2), (2, 2), (0, 0)))
            matches = [(dy, dx) for dy in range(5) for dx in range(5)
                       if np.array_equal(padded[dy:dy + 6, dx:dx + 5], out)]
            self.assertEqual(len(matches), 1)
            offsets.add(matches[0])
        self.assertGreater(len(offsets), 10)  # not one shift for the whole batch


class ProgressTest(unittest.TestCase):
    def make(self, is_terminal: bool) -> tuple[progress.EpochProgress, io.StringIO, list[float]]:
        now = [100.0]
        stream = io.StringIO()
        bar = progress.EpochProgress(3, 30, 1000, stream, is_terminal, interval_seconds=15,
                                     clock=lambda: now[0])
        return bar, stream, now

    def test_plain_lines_every_interval_with_rate_and_time_left(self) -> None:
        bar, stream, now = self.make(is_terminal=False)
        for _ in range(4):
            now[0] += 5
            bar.advance(100)  # 20 images/s
        lines = stream.getvalue().splitlines()
        self.assertEqual(lines, ["  epoch 3/30: 300/1000 images, 20 images/s, 35s left in this epoch"])
        now[0] += 60
        bar.advance(600)
        bar.finish()
        self.assertEqual(len(stream.getvalue().splitlines()), 1)  # the epoch's end is the summary's

    def test_a_terminal_gets_one_rewritten_line(self) -> None:
        bar, stream, now = self.make(is_terminal=True)
        for _ in range(3):
            now[0] += 1
            bar.advance(100)
        bar.finish()
        text = stream.getvalue()
        self.assertNotIn("\n", text)
        self.assertEqual(text.count("\r"), 4)
        self.assertTrue(text.endswith("\r\033[K"))
        self.assertEqual(progress.format_duration(125), "2m05s")


class MetricsTest(unittest.TestCase):
    def setUp(self) -> None:
        rng = np.random.default_rng(3)
        self.truth = rng.integers(0, 4, 300)
        scores = rng.random((300, 4)) + np.eye(4)[self.truth] * 0.6
        scores[:, 1] = np.round(scores[:, 1], 1)  # ties, which AUC must handle
        scores[:, 3] = 0.0
        scores[self.truth == 3, 3] = 0.5  # a class never predicted well
        self.probabilities = scores / scores.sum(axis=1, keepdims=True)
        self.predicted = self.probabilities.argmax(axis=1)

    def test_equal_to_sklearn(self) -> None:
        from sklearn import metrics as sk
        matrix = metrics.confusion_matrix(self.truth, self.predicted, 4)
        np.testing.assert_array_equal(matrix, sk.confusion_matrix(self.truth, self.predicted,
                                                                  labels=range(4)))
        ours = metrics.per_class_scores(matrix)
        precision, recall, f1, support = sk.precision_recall_fscore_support(
            self.truth, self.predicted, labels=range(4), zero_division=0)
        np.testing.assert_allclose(ours["precision"], precision)
        np.testing.assert_allclose(ours["recall"], recall)
        np.testing.assert_allclose(ours["f1"], f1)
        np.testing.assert_array_equal(ours["support"], support)
        for c in range(4):
            self.assertAlmostEqual(metrics.auc_roc(self.truth == c, self.probabilities[:, c]),
                                   sk.roc_auc_score(self.truth == c, self.probabilities[:, c]),
                                   places=12)
            fpr, tpr = metrics.roc_curve(self.truth == c, self.probabilities[:, c])
            sk_fpr, sk_tpr, _ = sk.roc_curve(self.truth == c, self.probabilities[:, c],
                                             drop_intermediate=False)
            np.testing.assert_allclose(fpr, sk_fpr)
            np.testing.assert_allclose(tpr, sk_tpr)
        report = metrics.classification_report(self.truth, self.probabilities, list("abcd"))
        self.assertAlmostEqual(report["accuracy"], sk.accuracy_score(self.truth, self.predicted))
        self.assertAlmostEqual(report["macro_auc_roc"],
                               sk.roc_auc_score(self.truth, self.probabilities, multi_class="ovr",
                                                average="macro"), places=12)


class ManifestTest(TempDirTest):
    def test_lst_and_jsonl_round_trip(self) -> None:
        samples = [dataset.Sample("images/train/Bag/a.png", 8),
                   dataset.Sample("augmented/T-shirt_top/b_fliph.png", 0)]
        labels = [f"l{i}" for i in range(9)]
        lst = os.path.join(self.tmp, "x.lst")
        jsonl = os.path.join(self.tmp, "x.jsonl")
        dataset.write_lst(lst, samples)
        dataset.write_jsonl(jsonl, samples, labels)
        self.assertEqual(dataset.read_lst(lst), samples)
        self.assertEqual(dataset.read_jsonl(jsonl), samples)
        with open(lst) as f:
            self.assertEqual(f.readline(), "0\t8\timages/train/Bag/a.png\n")
        with open(jsonl) as f:
            self.assertEqual(json.loads(f.readline()),
                             {"source-ref": "images/train/Bag/a.png", "class": "8", "class-name": "l8"})

    def test_stratified_split_keeps_class_proportions_and_is_repeatable(self) -> None:
        labels = np.repeat(np.arange(3), [100, 50, 20])
        train_index, val_index = dataset.stratified_split(labels, 0.1, seed=5)
        self.assertEqual(sorted(np.bincount(labels[val_index]).tolist()), [2, 5, 10])
        self.assertEqual(len(set(train_index) & set(val_index)), 0)
        again = dataset.stratified_split(labels, 0.1, seed=5)
        np.testing.assert_array_equal(again[1], val_index)


class BadDatasetTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.source = os.path.join(self.tmp, "source")
        make_shapes_dataset(self.source, per_class=10)

    def assert_prepare_fails(self, says: str, **kwargs: Any) -> None:
        with self.assertRaises(dataset.DatasetError) as caught:
            dataset.prepare(os.path.join(self.tmp, "work"), self.source, **kwargs)
        self.assertIn(says, str(caught.exception))

    def test_corrupt_image_is_skipped_and_named_or_with_strict_stops_prepare(self) -> None:
        with open(os.path.join(self.source, "cross", "broken.png"), "wb") as f:
            f.write(b"not a png")
        said: list = []
        prepared = dataset.prepare(os.path.join(self.tmp, "work"), self.source, log=said.append)
        self.assertEqual(sum(len(v) for v in prepared.splits.values()), 30)
        self.assertTrue(any("broken.png: not an image OpenCV can decode" in line
                            for line in said), said)
        self.assert_prepare_fails("broken.png: not an image OpenCV can decode (--strict_images)",
                                  strict=True)

    def test_empty_class(self) -> None:
        os.makedirs(os.path.join(self.source, "hexagon"))
        self.assert_prepare_fails("class 'hexagon' has no images")

    def test_unknown_label_in_the_test_set(self) -> None:
        test_source = os.path.join(self.tmp, "test")
        make_shapes_dataset(test_source, per_class=2)
        os.rename(os.path.join(test_source, "cross"), os.path.join(test_source, "star"))
        self.assert_prepare_fails("unknown label(s) ['star']", test_source=test_source)

    def test_missing_file_in_a_manifest(self) -> None:
        work = os.path.join(self.tmp, "work")
        prepared = dataset.prepare(work, self.source)
        os.remove(os.path.join(prepared.data_dir, prepared.splits["train"][0].path))
        with self.assertRaises(dataset.DatasetError) as caught:
            dataset.load_arrays(prepared.data_dir, prepared.splits["train"], "gray", (20, 20))
        self.assertIn("missing file", str(caught.exception))

    def test_unknown_label_in_a_manifest(self) -> None:
        work = os.path.join(self.tmp, "work")
        dataset.prepare(work, self.source)
        with open(os.path.join(work, "manifests", "val.lst"), "a") as f:
            f.write("99\t7\timages/val/x.png\n")
        with self.assertRaises(dataset.DatasetError) as caught:
            dataset.load_prepared(work)
        self.assertIn("label 7", str(caught.exception))

    def test_cli_reports_the_error_and_exits_2(self) -> None:
        self.assertEqual(run_cli("prepare", "--source", os.path.join(self.tmp, "nowhere"),
                                 "--work", os.path.join(self.tmp, "work")), 2)


class FashionMnistTest(TempDirTest):
    def test_prepares_from_the_debian_package(self) -> None:
        prepared = dataset.prepare(os.path.join(self.tmp, "work"), "fashion-mnist",
                                   limit_per_class=3)
        self.assertEqual(len(prepared.labels), 10)
        self.assertEqual(prepared.color, "gray")
        self.assertEqual(len(prepared.splits["test"]), 10000)
        self.assertEqual(len(prepared.splits["train"]) + len(prepared.splits["val"]), 30)


class BatchesTest(unittest.TestCase):
    def test_no_batch_of_one_and_under_bf16_no_odd_batch(self) -> None:
        self.assertEqual(loader.batch_bounds(81, 16)[-1], (64, 81))  # 16 + 1 -> 17
        self.assertEqual(loader.batch_bounds(16, 16), [(0, 16)])
        self.assertEqual(loader.batch_bounds(18, 16), [(0, 16), (16, 18)])
        self.assertEqual(loader.batch_bounds(81, 16, 2)[-1], (64, 80))  # one left out
        self.assertEqual(loader.batch_bounds(17, 15, 2), [(0, 14), (14, 16)])
        self.assertEqual(loader.batch_bounds(1, 16, 2), [])
        self.assertEqual(loader.batch_bounds(30, 16, 4), [(0, 16), (16, 28)])  # 2 processes, bf16
        for multiple in (2, 3, 4):
            for count in range(1, 60):
                sizes = [end - start for start, end in loader.batch_bounds(count, 7, multiple)]
                self.assertTrue(all(size % multiple == 0 for size in sizes), (count, sizes))
                self.assertGreater(sum(sizes), count - multiple)

    def test_bf16_training_survives_an_epoch_of_odd_size(self) -> None:
        """81 images in batches of 16 used to end in one of 17, on which bf16
        convolution backward corrupted the heap (SIGSEGV or abort here). A
        child process, so that a crash fails this test rather than the run."""
        script = (
            "import numpy as np, tempfile\n"
            "from model_export import loader, train\n"
            "rng = np.random.default_rng(0)\n"
            "images = rng.integers(0, 255, (81, 20, 20, 1), dtype=np.uint8)\n"
            "labels = rng.integers(0, 3, 81).astype(np.int64)\n"
            "hp = train.Hyperparameters(mini_batch_size=16, epochs=2, widths=[8, 16],\n"
            "                           blocks=[1, 1], bf16='true', early_stopping=False)\n"
            "train.train(loader.ArrayBatches(images, labels, 16, 2),\n"
            "            loader.ArrayBatches(images[:9], labels[:9], 16), ['a', 'b', 'c'], hp,\n"
            "            tempfile.mkdtemp(), log=lambda line: None)\n"
            "print('trained')\n")
        done = subprocess.run([sys.executable, "-c", script], cwd=os.path.dirname(HERE),
                              capture_output=True, text=True, timeout=300)
        self.assertEqual((done.returncode, done.stdout.strip()), (0, "trained"), done.stderr[-2000:])


class EarlyStoppingTest(unittest.TestCase):
    def test_stops_after_patience_epochs_without_relative_improvement(self) -> None:
        stopper = train.EarlyStopping(patience=2, tolerance=0.01, min_epochs=3)
        decisions = [stopper.update(e, a) for e, a in
                     enumerate([0.80, 0.85, 0.855, 0.857, 0.90, 0.901, 0.902], start=1)]
        # 0.855 and 0.857 are < 1% better than 0.85: stale twice -> stop at epoch 4
        self.assertEqual(decisions, [False, False, False, True, False, False, True])

    def test_a_learning_rate_drop_restarts_the_patience_count(self) -> None:
        stopper = train.EarlyStopping(patience=2, tolerance=0.01, min_epochs=1)
        self.assertFalse(stopper.update(1, 0.90))
        self.assertFalse(stopper.update(2, 0.90))  # stale 1
        stopper.learning_rate_dropped()
        self.assertFalse(stopper.update(3, 0.90))  # stale 1 again, not 2
        self.assertTrue(stopper.update(4, 0.90))

    def test_never_stops_before_min_epochs(self) -> None:
        stopper = train.EarlyStopping(patience=1, tolerance=0.5, min_epochs=5)
        self.assertFalse(any(stopper.update(e, 0.5) for e in range(1, 5)))
        self.assertTrue(stopper.update(5, 0.5))


if __name__ == "__main__":
    unittest.main(verbosity=2)
