"""What the benchmark scripts share: the ResNet-18 they serve (random
weights, made once into out/bench/resnet18) and their JSON report (date and
machine added), written to bench/results/."""
import datetime
import json
import os
import subprocess

from scripts import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESNET18 = os.path.join(ROOT, "out", "bench", "resnet18")


def ensure_resnet18() -> str:
    """The benchmark ResNet-18's model directory, made first if missing."""
    if not os.path.exists(os.path.join(RESNET18, "metadata.json")):
        subprocess.run(["/usr/bin/python3", "-m", "model_export.make_resnet18", "--out", RESNET18],
                       cwd=ROOT, check=True)
    return RESNET18


def write_report(path: str, **fields: object) -> None:
    """Writes `fields` as JSON to `path`, after today's date and this machine."""
    report = {"date": datetime.date.today().isoformat(),
              "machine": machine.describe(),
              **fields}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {path}")
