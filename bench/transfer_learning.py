"""Benchmark (not a test): does transfer learning pay on data we make? (issue 25)

    /usr/bin/python3 -m bench.transfer_learning [--few 10] [--epochs 40] [--rounds 2]

Pretrains torchvision's ResNet-18 on one synthetic domain (six other shapes,
tests/synthetic_parts.OTHER_KINDS, 60 photos each), then trains the six
parts from `--few` photos per class twice per round, interleaved: from
scratch, and from the pretrained backbone (`--pretrained`, the head new,
frozen for the first two epochs). Same epochs, same input (128 px), same
test photos (20 per part). Prints and writes bench/results/transfer-
learning.json: test accuracy, minutes, and the first epoch whose validation
accuracy reached --target; record them in bench/RESULTS.md.
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile

import torch

from bench.photo_pipeline import model_export
from bench.report import write_report
from tests import synthetic_parts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = ("--image_shape", "3,128,128", "--int8", "false", "--max_minutes", "0")


def first_epoch_at(log_path: str, target: float) -> int:
    """The first epoch whose validation accuracy reached `target` (0: none)."""
    with open(log_path) as f:
        for row in csv.DictReader(f):
            if float(row["val_accuracy"]) >= target:
                return int(row["epoch"])
    return 0


def train_parts(tmp: str, name: str, source: str, test: str, epochs: int, seed: int,
                target: float, extra: tuple) -> dict:
    work, out = os.path.join(tmp, f"work-{name}"), os.path.join(tmp, f"model-{name}")
    _, seconds, _, _ = model_export("all", "--photo", "--source", source, "--test_source", test,
                                    "--work", work, "--out", out, "--epochs", str(epochs),
                                    "--lr_scheduler_step", str(int(epochs * 0.75)),
                                    "--seed", str(seed), "--min_per_class", "2", *SHAPE, *extra)
    with open(os.path.join(out, "metadata.json")) as f:
        accuracy = json.load(f)["metrics"]["accuracy"]
    reached = first_epoch_at(os.path.join(work, "checkpoints", "training_log.csv"), target)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return {"test_accuracy": accuracy, "minutes": round(seconds / 60, 2),
            "first_epoch_at_target": reached}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--few", type=int, default=10, help="training photos per part")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--pretrain_epochs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.9)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="matid-bench-transfer-")
    try:
        other, few, test = (os.path.join(tmp, n) for n in ("other", "few", "test"))
        synthetic_parts.write_parts_folder(other, synthetic_parts.OTHER_KINDS, 60, 1600, 1200, 31)
        synthetic_parts.write_parts_folder(few, synthetic_parts.KINDS, args.few, 1600, 1200, 32)
        synthetic_parts.write_parts_folder(test, synthetic_parts.KINDS, 20, 1600, 1200, 33)
        pretrained_dir = os.path.join(tmp, "pretrained-model")
        _, pretrain_seconds, _, _ = model_export(
            "all", "--photo", "--source", other, "--work", os.path.join(tmp, "work-pretrain"),
            "--out", pretrained_dir, "--epochs", str(args.pretrain_epochs),
            "--lr_scheduler_step", str(int(args.pretrain_epochs * 0.75)), *SHAPE)
        with open(os.path.join(pretrained_dir, "metadata.json")) as f:
            pretrained_accuracy = json.load(f)["metrics"]["accuracy"]
        backbone = os.path.join(tmp, "other-shapes-resnet18.pth")
        torch.save(torch.load(os.path.join(pretrained_dir, "weights.pt"))["state_dict"], backbone)
        runs = {"scratch": [], "pretrained": []}
        for round_number in range(args.rounds):
            for name, extra in (("scratch", ()),
                                ("pretrained", ("--pretrained", backbone,
                                                "--freeze_backbone_epochs", "2"))):
                figures = train_parts(tmp, name, few, test, args.epochs, 100 + round_number,
                                      args.target, extra)
                print(f"round {round_number + 1} {name}: {figures}", flush=True)
                runs[name].append(figures)
        summary = {name: {"median_test_accuracy": statistics.median(r["test_accuracy"]
                                                                    for r in results),
                          "median_minutes": statistics.median(r["minutes"] for r in results)}
                   for name, results in runs.items()}
        figures = {"few_per_class": args.few, "epochs": args.epochs, "input": 128,
                   "pretrain": {"domain": list(synthetic_parts.OTHER_KINDS), "photos": 360,
                                "epochs": args.pretrain_epochs,
                                "minutes": round(pretrain_seconds / 60, 2),
                                "test_accuracy_on_its_domain": pretrained_accuracy},
                   "runs": runs, "summary": summary}
        print(json.dumps(figures, indent=1))
        write_report(os.path.join(ROOT, "bench", "results", "transfer-learning.json"), **figures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
