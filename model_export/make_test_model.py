#!/usr/bin/python3
"""Writes a tiny random-init model directory for tests and smoke runs.

The directory has what matid-server reads (see docs: model directory):
model.pt (frozen TorchScript fp32), optionally model_int8.pt (oneDNN static
quantization) and metadata.json. The weights are random with a fixed seed, so
predictions are deterministic but meaningless: never ship this model.

    /usr/bin/python3 -m model_export.make_test_model --out /tmp/model
"""
import argparse
import datetime
import json
import os

from . import debian_python  # noqa: E402

debian_python.ensure()

import torch  # noqa: E402
from torch import nn  # noqa: E402

FASHION_MNIST_LABELS = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


class TinyNet(nn.Module):
    """Two conv layers and a linear head: fast, any input size."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.head_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, classes)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        x = self.pool(self.relu1(self.conv1(x)))
        x = self.head_pool(self.relu2(self.conv2(x)))
        return self.dequant(self.fc(self.flatten(x)))


def export_int8(model: TinyNet, example: torch.Tensor, path: str) -> None:
    torch.backends.quantized.engine = "onednn"
    quantized = TinyNet(example.shape[1], model.fc.out_features)
    quantized.load_state_dict(model.state_dict())
    quantized.eval()
    quantized = torch.ao.quantization.fuse_modules(
        quantized, [["conv1", "relu1"], ["conv2", "relu2"]])
    quantized.qconfig = torch.ao.quantization.get_default_qconfig("onednn")
    prepared = torch.ao.quantization.prepare(quantized)
    with torch.no_grad():
        for _ in range(8):  # calibrate on random images
            prepared(torch.randn_like(example))
    converted = torch.ao.quantization.convert(prepared)
    scripted = torch.jit.freeze(torch.jit.script(converted.eval()))
    scripted.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--width", type=int, default=28)
    parser.add_argument("--height", type=int, default=28)
    parser.add_argument("--color", choices=["gray", "rgb"], default="gray")
    parser.add_argument("--resize", default="stretch",
                        choices=["stretch", "center_crop", "letterbox"])
    parser.add_argument("--labels", default=",".join(FASHION_MNIST_LABELS),
                        help="comma-separated label names")
    parser.add_argument("--int8", action="store_true",
                        help="also write model_int8.pt")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    labels = args.labels.split(",")
    channels = 1 if args.color == "gray" else 3
    model = TinyNet(channels, len(labels)).eval()
    example = torch.randn(1, channels, args.height, args.width)

    os.makedirs(args.out, exist_ok=True)
    scripted = torch.jit.freeze(torch.jit.script(model))
    scripted.save(os.path.join(args.out, "model.pt"))
    if args.int8:
        export_int8(model, example, os.path.join(args.out, "model_int8.pt"))

    mean = [0.2860] * channels if channels == 1 else [0.485, 0.456, 0.406]
    std = [0.3530] * channels if channels == 1 else [0.229, 0.224, 0.225]
    metadata = {
        "name": "matid-test-model",
        "version": f"random-seed{args.seed}",
        "labels": labels,
        "input": {
            "width": args.width, "height": args.height, "channels": channels,
            "color": args.color, "resize": args.resize,
            "mean": mean, "std": std,
        },
        "qengine": "onednn",
        "output": "logits",
        "trained_at": datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "metrics": {},
    }
    with open(os.path.join(args.out, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=2)
    print(f"wrote test model to {args.out}")


if __name__ == "__main__":
    main()
