#!/usr/bin/python3
"""Writes a random-init torchvision ResNet-18 model directory (224x224 RGB,
ImageNet mean/std, center crop) with fp32 and int8 (oneDNN) variants, for
speed benchmarks only: its predictions mean nothing.

    /usr/bin/python3 -m model_export.make_resnet18 --out out/bench/resnet18
"""
import argparse

from . import debian_python  # noqa: E402

debian_python.ensure()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

from . import export  # noqa: E402
from .fashion_mnist import LABELS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = torchvision.models.resnet18(weights=None, num_classes=len(LABELS)).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, args.size, args.size, 3), dtype=np.uint8)
    export.export_model(model, args.out, LABELS, "rgb", args.size, args.size,
                        [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], images[:32], images[32:],
                        name="resnet18-random", version="bench")
    metadata = export.read_metadata(args.out)
    metadata["input"]["resize"] = "center_crop"
    export.write_metadata(args.out, metadata)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
