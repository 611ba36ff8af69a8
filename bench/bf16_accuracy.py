"""Benchmark (not a test): test accuracy of fp32 training against bf16
autocast, for the test network (tests/model_export_test.py's end-to-end run:
widths 8,16 on 240 synthetic shapes, several seeds) and the quick profile
(Fashion-MNIST). The two numeric paths alternate run by run. Prints each run
and writes bench/results/bf16-accuracy.json; record it in bench/RESULTS.md.

    /usr/bin/python3 -m bench.bf16_accuracy [--seeds 4] [--profiles test,quick]

--bf16 auto picks bf16 where the CPU has avx512_bf16 or amx_bf16 (see
scripts/machine.py for this machine); this measures whether that is safe.
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from bench.report import write_report  # noqa: E402
from model_export.cli import main as cli_main  # noqa: E402
from tests.model_export_test import END_TO_END_TRAINING, make_shapes_dataset  # noqa: E402

def train_once(profile: str, bf16: str, seed: int, shapes: str) -> dict:
    work = tempfile.mkdtemp(prefix=f"matid-bf16-{profile}-")
    out = os.path.join(work, "model")
    args = ["all", "--work", work, "--out", out, "--int8", "false", "--bf16", bf16,
            "--seed", str(seed)]
    args += ["--source", shapes, *END_TO_END_TRAINING] if profile == "test" else ["--quick"]
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main(args)
    if code != 0:
        raise SystemExit(f"bf16_accuracy: training {profile} --bf16 {bf16} failed ({code})")
    with open(os.path.join(out, "metadata.json")) as f:
        accuracy = json.load(f)["metrics"]["accuracy"]
    with open(os.path.join(work, "checkpoints", "train_result.json")) as f:
        epochs = json.load(f)["epochs_run"]
    return {"profile": profile, "bf16": bf16, "seed": seed, "accuracy": accuracy,
            "epochs": epochs, "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4, help="seeds per profile and path")
    parser.add_argument("--profiles", default="test,quick", help="test and/or quick")
    args = parser.parse_args()
    profiles = [p for p in args.profiles.split(",") if p]
    if not profiles or any(p not in ("test", "quick") for p in profiles) or args.seeds < 1:
        parser.error("--profiles takes test and/or quick; --seeds at least 1")
    shapes = tempfile.mkdtemp(prefix="matid-bf16-shapes-")
    make_shapes_dataset(shapes, per_class=80)
    runs = []
    for profile in profiles:
        for seed in range(args.seeds):
            for bf16 in ("false", "true"):  # alternate: the machine's speed drifts
                run = train_once(profile, bf16, seed, shapes)
                print(json.dumps(run), flush=True)
                runs.append(run)
    summary = {}
    for profile in profiles:
        for bf16 in ("false", "true"):
            picked = [r for r in runs if r["profile"] == profile and r["bf16"] == bf16]
            accuracies = [r["accuracy"] for r in picked]
            summary[f"{profile} bf16={bf16}"] = {
                "min": min(accuracies), "median": statistics.median(accuracies),
                "max": max(accuracies),
                "median_seconds": statistics.median(r["seconds"] for r in picked)}
    for name, figures in summary.items():
        print(f"{name}: accuracy min {figures['min']:.4f} median {figures['median']:.4f} "
              f"max {figures['max']:.4f}, {figures['median_seconds']:.0f} s")
    write_report(os.path.join(ROOT, "bench", "results", "bf16-accuracy.json"),
                 runs=runs, summary=summary)


if __name__ == "__main__":
    main()
