"""ResNet sized for the input: small images get a 3x3 stem without
down-sampling (Fashion-MNIST 28x28), large ones the usual 7x7/2 + max-pool
stem. Widths and blocks per stage are parameters; the default is a ResNet-14
(widths 16/32/64, two basic blocks per stage), which trains at roughly 580
images/s on 2 CPU threads at 28x28.
"""
from typing import Sequence

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_width: int, out_width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_width, out_width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_width)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_width, out_width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_width)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Identity()
        if stride != 1 or in_width != out_width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_width, out_width, 1, stride, bias=False), nn.BatchNorm2d(out_width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, channels: int, classes: int, input_size: int,
                 widths: Sequence[int] = (16, 32, 64), blocks: Sequence[int] = (2, 2, 2)) -> None:
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError("widths and blocks need one entry per stage")
        if input_size >= 96:
            self.stem = nn.Sequential(
                nn.Conv2d(channels, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]),
                nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                nn.ReLU())
        layers = []
        in_width = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks)):
            for block in range(count):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_width, width, stride))
                in_width = width
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.stages(self.stem(x)))))
