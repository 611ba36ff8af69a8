"""Training on from an exported model directory (`train --resume DIR`).

export writes weights.pt beside model.pt: the trained network's state dict
with what is needed to build it again (architecture, input size, mean/std)
and the labels its head was trained for. model.pt cannot serve for this:
it is frozen TorchScript, with batch norm folded into the convolutions.

Resuming keeps the architecture, the input size and the normalisation of
the directory's model (they are what its weights learned), and maps the
head by label name: a class the model knew keeps its row, a new class gets
a fresh one, a class no longer in the data is dropped. So a box can train
on from the version it serves with new photos, or with new classes.
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

WEIGHTS_FILE = "weights.pt"


@dataclass
class ResumePoint:
    model_dir: str
    num_layers: int
    widths: List[int]
    blocks: List[int]
    channels: int
    input_width: int
    input_height: int
    mean: List[float]
    std: List[float]
    labels: List[str]
    state_dict: Dict[str, torch.Tensor]


def save(path: str, checkpoint: Dict, labels: Sequence[str]) -> None:
    """weights.pt from a training checkpoint (train.py's best.pt) and its labels."""
    keep = ("state_dict", "num_layers", "widths", "blocks", "channels", "classes", "input_size",
            "input_width", "input_height", "mean", "std")
    torch.save({**{k: checkpoint[k] for k in keep if k in checkpoint}, "labels": list(labels)},
               path + ".tmp")
    os.replace(path + ".tmp", path)


def read(model_dir: str) -> ResumePoint:
    """The resume point of an exported model directory; ValueError naming
    --resume when it has none or it is damaged."""
    path = os.path.join(model_dir, WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"--resume {model_dir}: no {WEIGHTS_FILE} there (a model directory "
                         f"exported by model_export export has one; older exports do not: "
                         f"train them again)")
    try:
        saved = torch.load(path, map_location="cpu")
        size = saved.get("input_size", 0)
        return ResumePoint(
            model_dir=model_dir, num_layers=int(saved.get("num_layers", 0)),
            widths=list(saved["widths"]), blocks=list(saved["blocks"]),
            channels=int(saved["channels"]), input_width=int(saved.get("input_width", size)),
            input_height=int(saved.get("input_height", size)), mean=list(saved["mean"]),
            std=list(saved["std"]), labels=list(saved["labels"]),
            state_dict=saved["state_dict"])
    except Exception as error:  # torch.load and a damaged dict raise many kinds
        raise ValueError(f"--resume {model_dir}: {WEIGHTS_FILE} is not a matid training "
                         f"checkpoint ({type(error).__name__}: {error})") from None


def head_rows(old_labels: Sequence[str], new_labels: Sequence[str]) -> List[Optional[int]]:
    """For each new label, the row of the old head that knew it, or None."""
    where = {label: row for row, label in enumerate(old_labels)}
    return [where.get(label) for label in new_labels]


def describe_change(old_labels: Sequence[str], new_labels: Sequence[str]) -> str:
    added = [label for label in new_labels if label not in old_labels]
    dropped = [label for label in old_labels if label not in new_labels]
    kept = len(new_labels) - len(added)
    return (f"{kept} classes kept" + (f", new: {', '.join(added)}" if added else "")
            + (f", no longer trained: {', '.join(dropped)}" if dropped else ""))


def load_into(model: nn.Module, point: ResumePoint, labels: Sequence[str]) -> str:
    """Copies the resume point's weights into `model` (built with its
    architecture and len(labels) classes), the head row by row by label.
    Returns what changed, for the log."""
    own = model.state_dict()
    rows = head_rows(point.labels, labels)
    state = {name: tensor for name, tensor in point.state_dict.items()
             if not name.startswith("fc.")}
    for name in ("fc.weight", "fc.bias"):
        fresh, old = own[name].clone(), point.state_dict[name]
        for new_row, old_row in enumerate(rows):
            if old_row is not None:
                fresh[new_row] = old[old_row]
        state[name] = fresh
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"--resume {point.model_dir}: its weights do not fit the network "
                         f"({error})") from None
    return describe_change(point.labels, labels)
