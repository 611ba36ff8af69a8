"""Export a trained model into a directory matid-server loads:

- model.pt: frozen TorchScript, fp32. (optimize_for_inference is applied by
  the server at load time: modules saved after it do not load in 1.13.)
- model_int8.pt: post-training static quantization (FX graph mode) for the
  oneDNN engine, calibrated on training images, frozen TorchScript.
- metadata.json: labels, input spec, mean/std, qengine, metrics.

Checks: the saved fp32 module reproduces the eager model's logits within
FP32_TOLERANCE; int8 top-1 agreement with fp32 is measured and reported.
"""
import copy
import datetime
import json
import os
from typing import Callable, Dict, List, Optional

import cv2
import numpy as np
import torch
from torch import nn

from .train import evaluate_logits, to_tensor

FP32_TOLERANCE = 1e-3  # max |logit difference| between eager and exported fp32
QENGINE = "onednn"


def export_fp32(model: nn.Module, path: str) -> torch.jit.ScriptModule:
    scripted = torch.jit.freeze(torch.jit.script(copy.deepcopy(model).eval()))
    scripted.save(path)
    return torch.jit.load(path)


def export_int8(model: nn.Module, calibration: torch.Tensor, path: str) -> torch.jit.ScriptModule:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = QENGINE
    float_model = copy.deepcopy(model).eval()
    prepared = prepare_fx(float_model, get_default_qconfig_mapping(QENGINE),
                          example_inputs=(calibration[:1],))
    with torch.no_grad():
        for start in range(0, len(calibration), 64):
            prepared(calibration[start:start + 64])
    quantized = convert_fx(prepared)
    scripted = torch.jit.freeze(torch.jit.script(quantized.eval()))
    scripted.save(path)
    return torch.jit.load(path)


def export_model(model: nn.Module, out_dir: str, labels: List[str], color: str,
                 width: int, height: int, mean: List[float], std: List[float],
                 calibration_images: np.ndarray, check_images: np.ndarray,
                 name: str = "fashion-mnist-resnet", version: Optional[str] = None,
                 extra_metrics: Optional[Dict[str, float]] = None,
                 int8: bool = True, log: Callable[[str], None] = print) -> Dict:
    """Writes the model directory and returns the export checks."""
    os.makedirs(out_dir, exist_ok=True)
    model = model.eval()
    checks: Dict[str, float] = {}
    check = to_tensor(check_images, mean, std)
    with torch.no_grad():
        eager = model(check)
        fp32 = export_fp32(model, os.path.join(out_dir, "model.pt"))
        exported = fp32(check)
    difference = float((eager - exported).abs().max())
    checks["fp32_max_abs_logit_difference"] = difference
    if difference > FP32_TOLERANCE:
        raise RuntimeError(f"exported fp32 model differs from the trained one by {difference:g} "
                           f"(tolerance {FP32_TOLERANCE:g})")
    log(f"export: model.pt matches the eager model (max |logit diff| {difference:.2e} "
        f"<= {FP32_TOLERANCE:g})")
    if int8:
        int8_path = os.path.join(out_dir, "model_int8.pt")
        quantized = export_int8(model, to_tensor(calibration_images, mean, std), int8_path)
        with torch.no_grad():
            int8_logits = evaluate_logits(quantized, check_images, mean, std)
        agreement = float((int8_logits.argmax(1) == exported.argmax(1)).float().mean())
        checks["int8_top1_agreement_with_fp32"] = agreement
        log(f"export: model_int8.pt ({QENGINE}) top-1 agreement with fp32 on "
            f"{len(check_images)} images: {agreement:.4f}")
    metadata = {
        "name": name,
        "version": version or datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S"),
        "labels": list(labels),
        "input": {"width": width, "height": height, "channels": 1 if color == "gray" else 3,
                  "color": color, "resize": "stretch",
                  "mean": [round(m, 6) for m in mean], "std": [round(s, 6) for s in std]},
        "qengine": QENGINE,
        "output": "logits",
        "trained_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "metrics": {**(extra_metrics or {}), **checks},
    }
    write_metadata(out_dir, metadata)
    return checks


def write_metadata(out_dir: str, metadata: Dict) -> None:
    path = os.path.join(out_dir, "metadata.json")
    with open(path + ".tmp", "w") as f:
        json.dump(metadata, f, indent=2)
    os.replace(path + ".tmp", path)


def read_metadata(out_dir: str) -> Dict:
    with open(os.path.join(out_dir, "metadata.json")) as f:
        return json.load(f)


def write_golden_set(model: nn.Module, out_dir: str, images: np.ndarray, truth: np.ndarray,
                     labels: List[str], mean: List[float], std: List[float],
                     margin: float = 0.1) -> float:
    """golden.json and its images (golden-NN.png) in the model directory:
    matid-server classifies them with a new version before it serves it and
    refuses the version when fewer than min_accuracy come out right.
    min_accuracy is the exported model's own accuracy on them, less
    `margin` (served and offline agree; int8 may differ on a few). Returns
    min_accuracy."""
    with torch.no_grad():
        predicted = model.eval()(to_tensor(images, mean, std)).argmax(1).numpy()
    accuracy = float((predicted == truth).mean())
    minimum = max(0.0, round(accuracy - margin, 2))
    entries = []
    for index, (image, label) in enumerate(zip(images, truth)):
        file = f"golden-{index:02d}.png"
        pixels = image[:, :, 0] if image.shape[-1] == 1 else image[:, :, ::-1]  # RGB -> BGR
        cv2.imwrite(os.path.join(out_dir, file), pixels)
        entries.append({"file": file, "label": labels[int(label)]})
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump({"min_accuracy": minimum, "images": entries}, f, indent=1)
    return minimum
