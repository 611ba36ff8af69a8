"""The networks training can build, and transfer learning from a file.

- num_layers 0: model.ResNet, sized for the input (small images; widths and
  blocks per stage).
- num_layers 18, 34, 50: torchvision's ResNets (SageMaker's name for the
  choice), with a head for the plant's classes and, for gray images, a
  one-channel stem.

A pretrained backbone comes only from a file the user copied onto the
machine (`--pretrained FILE`): nothing is downloaded. When the file keeps
torchvision's release name (resnet18-f37072fd.pth), its sha256 must start
with the digits in the name, which is the check torch.hub makes.
"""
import hashlib
import os
import re
from typing import Dict, List, Sequence, Tuple

import torch
import torchvision
from torch import nn

from .model import ResNet

TORCHVISION_DEPTHS = (18, 34, 50)
# torchvision's ImageNet releases (download.pytorch.org/models/NAME): the
# digits in each name are the start of the file's sha256.
KNOWN_RELEASES = {
    "resnet18-f37072fd.pth": 18,  # ResNet18_Weights.IMAGENET1K_V1
    "resnet34-b627a593.pth": 34,  # ResNet34_Weights.IMAGENET1K_V1
    "resnet50-0676ba61.pth": 50,  # ResNet50_Weights.IMAGENET1K_V1
    "resnet50-11ad3fa6.pth": 50,  # ResNet50_Weights.IMAGENET1K_V2
}
RELEASE_NAME = re.compile(r"^resnet(18|34|50)-([0-9a-f]{8,})\.pth$")


def build(num_layers: int, channels: int, classes: int, input_size: int,
          widths: Sequence[int], blocks: Sequence[int]) -> nn.Module:
    if num_layers == 0:
        return ResNet(channels, classes, input_size, widths, blocks)
    if num_layers not in TORCHVISION_DEPTHS:
        raise ValueError(f"--num_layers {num_layers}: expected 0 (small ResNet) or one of "
                         f"{', '.join(map(str, TORCHVISION_DEPTHS))}")
    model = getattr(torchvision.models, f"resnet{num_layers}")(num_classes=classes)
    if channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, 7, 2, 3, bias=False)
    return model


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_release(path: str, num_layers: int) -> str:
    """The file's sha256; ValueError when it has a torchvision release name
    and its digest or depth does not match that name."""
    digest = sha256_of(path)
    name = os.path.basename(path)
    match = RELEASE_NAME.match(name)
    if match:
        if int(match.group(1)) != num_layers:
            raise ValueError(f"--pretrained {path} is a ResNet-{match.group(1)}; "
                             f"--num_layers is {num_layers}")
        if not digest.startswith(match.group(2)):
            raise ValueError(f"--pretrained {path}: sha256 {digest} does not start with "
                             f"{match.group(2)}, as torchvision's {name} does: the file is "
                             f"damaged or not the release")
    return digest


def load_pretrained(model: nn.Module, path: str, num_layers: int) -> Tuple[str, List[str]]:
    """Copies the backbone of a torchvision state dict into `model` (not the
    head). A one-channel stem gets the sum of the RGB filters. Returns the
    file's sha256 and the names of the tensors loaded."""
    if num_layers == 0:
        raise ValueError("--pretrained needs --num_layers 18, 34 or 50")
    digest = check_release(path, num_layers)
    try:
        state = torch.load(path, map_location="cpu")
    except Exception as error:  # torch.load raises many kinds
        raise ValueError(f"--pretrained {path}: not a PyTorch state dict ({error})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = model.state_dict()
    loaded: Dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name.startswith("fc.") or name not in own:
            continue
        if name == "conv1.weight" and tensor.shape[1] == 3 and own[name].shape[1] == 1:
            tensor = tensor.sum(dim=1, keepdim=True)
        if tensor.shape != own[name].shape:
            raise ValueError(f"--pretrained {path}: {name} has shape {list(tensor.shape)}, "
                             f"the ResNet-{num_layers} needs {list(own[name].shape)}")
        loaded[name] = tensor
    missing = [n for n in own if not n.startswith("fc.") and n not in loaded
               and not n.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"--pretrained {path}: not a ResNet-{num_layers} backbone "
                         f"({len(missing)} tensors missing, e.g. {missing[0]})")
    model.load_state_dict(loaded, strict=False)
    return digest, sorted(loaded)


def head_parameters(model: nn.Module) -> List[nn.Parameter]:
    return list(model.fc.parameters())


def backbone_parameters(model: nn.Module) -> List[nn.Parameter]:
    head = {id(p) for p in head_parameters(model)}
    return [p for p in model.parameters() if id(p) not in head]
