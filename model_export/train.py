"""Training with SageMaker image-classification hyperparameter names.

mini_batch_size, epochs, learning_rate, lr_scheduler_factor,
lr_scheduler_step ("10,20": epochs where the rate is multiplied by the
factor), early_stopping, early_stopping_patience, early_stopping_tolerance
(relative: an epoch improves when (acc - best) / best >= tolerance),
early_stopping_min_epochs, momentum, weight_decay: same meanings and defaults
as SageMaker's algorithm. Optimiser: SGD with momentum.

num_layers (18, 34, 50: torchvision's ResNets) is SageMaker's name too;
--pretrained FILE is SageMaker's use_pretrained_model with a file the user
supplies (architectures.py).

Not SageMaker's: the small ResNet (widths, blocks), the online
augmentations (loader.py; horizontal flip here), label smoothing, a time
budget, and speed: channels_last memory format and bf16 autocast with fp32
master weights where the CPU computes bf16 natively (avx512_bf16/amx_bf16).
Validation and the exported model are fp32.
"""
import contextlib
import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from . import architectures, distributed, resume
from .progress import EpochProgress

# Training images read from disk whose pixels give the normalisation's mean
# and std (a set held in memory uses all of its images).
STATISTICS_IMAGES = 256


class BatchSource(Protocol):
    """What train() reads batches from (loader.py)."""
    count: int

    def epoch(self, rng: Optional[np.random.Generator], multiple: int = 1,
              share: distributed.Share = distributed.Share()
              ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        ...

    def sample(self, count: int) -> np.ndarray:
        ...

    def describe(self) -> str:
        ...


@dataclass
class Hyperparameters:
    mini_batch_size: int = 64
    epochs: int = 20
    learning_rate: float = 0.1
    lr_scheduler_factor: float = 0.1
    lr_scheduler_step: str = "10,20"
    early_stopping: bool = True
    early_stopping_patience: int = 2
    early_stopping_tolerance: float = 0.01
    early_stopping_min_epochs: int = 10
    momentum: float = 0.9
    weight_decay: float = 0.0001
    optimizer: str = "sgd"  # sgd or adam (SageMaker's names)
    # Not SageMaker's: architecture, budget, online augmentation and speed.
    widths: List[int] = field(default_factory=lambda: [16, 32, 64])
    blocks: List[int] = field(default_factory=lambda: [2, 2, 2])
    max_minutes: float = 0.0  # 0: no time budget
    crop_padding: int = 2  # random crop after zero padding by this many pixels (0: off)
    label_smoothing: float = 0.1
    bf16: str = "auto"  # auto: bf16 autocast when the CPU has native bf16; true; false
    channels_last: bool = True
    threads: int = 2
    seed: int = 42
    num_layers: int = 0  # 0: the small ResNet above; 18, 34, 50: torchvision's
    pretrained: str = ""  # a torchvision state dict for the backbone ("": none)
    backbone_lr_factor: float = 0.1  # with pretrained: the backbone's share of the rate
    freeze_backbone_epochs: int = 0  # with pretrained or resume: epochs that train the head only
    resume: str = ""  # an exported model directory to train on from ("": none)
    device: str = "auto"  # auto: CUDA when present; cpu; cuda
    # One process doing what torchrun's N would (distributed.py): each batch
    # in N shares, a forward and backward each. For tests; 1: off.
    ghost_shares: int = 1

    def transfer(self) -> bool:
        """Starting from learned weights: the backbone gets backbone_lr_factor
        of the rate, and may be frozen for the first epochs."""
        return bool(self.pretrained or self.resume)

    def milestones(self) -> List[int]:
        return [int(s) for s in str(self.lr_scheduler_step).split(",") if s.strip()]


@dataclass
class TrainResult:
    best_epoch: int
    best_val_accuracy: float
    epochs_run: int
    stop_reason: str
    seconds: float
    mean: List[float]
    std: List[float]


def cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(setting: str) -> bool:
    if setting not in ("auto", "true", "false"):
        raise ValueError(f"bf16 must be auto, true or false, got {setting!r}")
    return setting == "true" or (setting == "auto" and cpu_has_native_bf16())


def channel_stats(images: np.ndarray) -> Tuple[List[float], List[float]]:
    """Per-channel mean and std of uint8 NHWC images, on values scaled to [0, 1]."""
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return pixels.mean(axis=0).tolist(), np.maximum(pixels.std(axis=0), 1e-6).tolist()


def to_tensor(images: np.ndarray, mean: List[float], std: List[float]) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW (the server's preprocessing)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


def evaluate_logits(model: nn.Module, images: np.ndarray, mean: List[float], std: List[float],
                    batch_size: int = 256) -> torch.Tensor:
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            outputs.append(model(to_tensor(images[start:start + batch_size], mean, std)))
    return torch.cat(outputs) if outputs else torch.empty(0)


class EarlyStopping:
    """SageMaker's rule: after min_epochs, stop when `patience` epochs in a row
    did not improve the best validation accuracy by the relative tolerance.
    One addition: a learning-rate drop restarts the patience count, so the
    new rate gets `patience` epochs to show its effect. (Measured: without it,
    the default schedule stopped Fashion-MNIST at epoch 10, the very epoch
    the rate drops, at 0.915 test accuracy.)"""

    def __init__(self, patience: int, tolerance: float, min_epochs: int) -> None:
        self.patience, self.tolerance, self.min_epochs = patience, tolerance, min_epochs
        self.best: Optional[float] = None
        self.stale = 0

    def update(self, epoch: int, accuracy: float) -> bool:
        """Records an epoch (1-based); True when training should stop."""
        if self.best is None or self.best <= 0:
            improved = self.best is None or accuracy > self.best
        else:
            improved = (accuracy - self.best) / self.best >= self.tolerance
        if self.best is None or accuracy > self.best:
            self.best = accuracy
        self.stale = 0 if improved else self.stale + 1
        return epoch >= self.min_epochs and self.stale >= self.patience

    def learning_rate_dropped(self) -> None:
        self.stale = 0


def param_groups(model: nn.Module, hp: Hyperparameters) -> List[Dict]:
    """One group for a network trained from scratch; for a pretrained or
    resumed one, the backbone at `backbone_lr_factor` of the head's rate."""
    if not hp.transfer():
        return [{"params": list(model.parameters()), "lr": hp.learning_rate}]
    return [{"params": architectures.backbone_parameters(model),
             "lr": hp.learning_rate * hp.backbone_lr_factor},
            {"params": architectures.head_parameters(model), "lr": hp.learning_rate}]


def evaluate_batches(model: nn.Module, source: BatchSource, mean: List[float],
                     std: List[float], memory_format: torch.memory_format,
                     device: torch.device = torch.device("cpu")
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of every image of `source`, in order, unaugmented."""
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for images, y in source.epoch(None):
            x = to_tensor(images, mean, std).contiguous(memory_format=memory_format)
            logits.append(model(x.to(device)).float().cpu())
            labels.append(torch.from_numpy(y))
    return torch.cat(logits), torch.cat(labels)


@contextlib.contextmanager
def batch_norm_frozen(model: nn.Module, frozen: bool) -> Iterator[None]:
    """Batch norm's running statistics left as they are (momentum 0) while
    `frozen`: a ghost share after the first, as DDP keeps rank 0's."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    if frozen:
        for m in norms:
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


@dataclass
class Step:
    """What one training step needs besides the batch."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    mean: List[float]
    std: List[float]
    memory_format: torch.memory_format
    device: torch.device
    bf16: bool
    ghost_shares: int

    def run(self, images: np.ndarray, labels: np.ndarray) -> Tuple[float, int]:
        """One SGD step on a batch (in ghost shares when set); (summed loss,
        right answers)."""
        self.optimizer.zero_grad()
        total_loss, correct = 0.0, 0
        for part in range(self.ghost_shares):
            first, last = distributed.Share(part, self.ghost_shares).bounds(len(labels))
            x = to_tensor(images[first:last], self.mean, self.std)
            x = x.contiguous(memory_format=self.memory_format).to(self.device)
            y = torch.from_numpy(labels[first:last]).to(self.device)
            with batch_norm_frozen(self.model, part > 0), \
                    torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = self.model(x).float()
            loss = self.loss_fn(logits, y)
            (loss / self.ghost_shares).backward()
            total_loss += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
        self.optimizer.step()
        return total_loss, correct


def start_model(hp: Hyperparameters, channels: int, labels: Sequence[str], size: int,
                point: Optional[resume.ResumePoint], log: Callable[[str], None]) -> nn.Module:
    """The network to train: new, with a pretrained backbone, or resumed
    from `point` (an exported model directory's; `hp` then carries its
    architecture)."""
    model = architectures.build(hp.num_layers, channels, len(labels), size, hp.widths,
                                hp.blocks)
    if hp.pretrained:
        digest, loaded = architectures.load_pretrained(model, hp.pretrained, hp.num_layers)
        log(f"train: backbone from {hp.pretrained} (sha256 {digest[:16]}..., {len(loaded)} "
            f"tensors)")
    if point is not None:
        change = resume.load_into(model, point, labels)
        log(f"train: resumed from {hp.resume}/{resume.WEIGHTS_FILE}: {change}")
    if hp.transfer():
        log(f"train: learning rate x{hp.backbone_lr_factor:g} for the backbone"
            + (f", frozen for {hp.freeze_backbone_epochs} epochs"
               if hp.freeze_backbone_epochs else ""))
    return model


OPTIMIZERS = ("sgd", "adam")


def make_optimizer(groups: List[Dict], hp: Hyperparameters) -> torch.optim.Optimizer:
    """SageMaker's `optimizer`: sgd (with momentum) or adam (AdamW, its default betas)."""
    if hp.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=hp.learning_rate, momentum=hp.momentum,
                               weight_decay=hp.weight_decay)
    if hp.optimizer == "adam":
        return torch.optim.AdamW(groups, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    raise ValueError(f"--optimizer {hp.optimizer}: expected one of {', '.join(OPTIMIZERS)}")


def set_backbone_frozen(model: nn.Module, hp: Hyperparameters, epoch: int) -> bool:
    frozen = hp.transfer() and epoch <= hp.freeze_backbone_epochs
    for parameter in architectures.backbone_parameters(model) if hp.transfer() else []:
        parameter.requires_grad_(not frozen)
    return frozen


def train(train_source: BatchSource, val_source: BatchSource, labels: Sequence[str],
          hp: Hyperparameters, out_dir: str,
          log: Callable[[str], None] = print) -> Tuple[nn.Module, TrainResult]:
    """Trains, logs each epoch to the console and out_dir/training_log.csv,
    keeps the best model (by validation accuracy) in out_dir/best.pt. With
    hp.resume, the normalisation is the resumed model's. Under torchrun,
    every process trains its share (distributed.py) and rank 0 writes."""
    share = distributed.from_environ(os.environ)
    device = distributed.device_for(hp.device, share, os.environ)
    if share is not None:
        distributed.start(device)
    try:
        return _train(train_source, val_source, labels, hp, out_dir, log, share, device)
    finally:
        distributed.stop()


def _train(train_source: BatchSource, val_source: BatchSource, labels: Sequence[str],
           hp: Hyperparameters, out_dir: str, log: Callable[[str], None],
           share: Optional[distributed.Share],
           device: torch.device) -> Tuple[nn.Module, TrainResult]:
    torch.manual_seed(hp.seed)
    torch.set_num_threads(hp.threads)
    rng = np.random.default_rng(hp.seed)
    writer_process = distributed.is_writer(share)
    if not writer_process:
        log = lambda line: None  # noqa: E731 - rank 0 speaks for all
    os.makedirs(out_dir, exist_ok=True)
    classes = len(labels)
    sample = train_source.sample(STATISTICS_IMAGES)
    point = resume.read(hp.resume) if hp.resume else None
    mean, std = (point.mean, point.std) if point else channel_stats(sample)
    channels = sample.shape[-1]
    size = min(sample.shape[1], sample.shape[2])
    bf16 = use_bf16(hp.bf16)
    memory_format = torch.channels_last if hp.channels_last else torch.contiguous_format
    model = start_model(hp, channels, labels, size, point, log)
    model = model.to(device=device, memory_format=memory_format)
    shape = (f"torchvision ResNet-{hp.num_layers}" if hp.num_layers else
             f"widths {hp.widths}, blocks {hp.blocks}")
    processes = share.size if share else 1
    log(f"train: {shape}, input {channels}x{sample.shape[1]}x{sample.shape[2]}, bf16 autocast "
        f"{'on' if bf16 else 'off'} (--bf16={hp.bf16}), channels_last "
        f"{'on' if hp.channels_last else 'off'}, {train_source.describe()}, "
        f"label smoothing {hp.label_smoothing:g}, on {device}"
        + (f", {processes} processes (DistributedDataParallel)" if share else ""))
    trained = model
    if share is not None:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(param_groups(model, hp), hp)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, hp.milestones(),
                                                     gamma=hp.lr_scheduler_factor)
    stopper = EarlyStopping(hp.early_stopping_patience, hp.early_stopping_tolerance,
                            hp.early_stopping_min_epochs)
    step = Step(trained, optimizer, nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing),
                mean, std, memory_format, device, bf16, hp.ghost_shares)
    val_loss_fn = nn.CrossEntropyLoss()
    # Every share of a batch the same size, and even under bf16 (batch_bounds).
    multiple = processes * hp.ghost_shares * (2 if bf16 else 1)
    log_path = os.path.join(out_dir, "training_log.csv")
    best_path = os.path.join(out_dir, "best.pt")
    if writer_process:
        with open(os.path.join(out_dir, "hyperparameters.json"), "w") as f:
            json.dump(asdict(hp), f, indent=1)

    started = time.monotonic()
    best_accuracy, best_epoch, epoch = -1.0, 0, 0
    stop_reason = f"completed {hp.epochs} epochs"
    count = train_source.count
    with open(log_path if writer_process else os.devnull, "w", newline="") as log_file:
        writer = csv.writer(log_file)
        writer.writerow(["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                         "learning_rate", "seconds", "images_per_second"])
        for epoch in range(1, hp.epochs + 1):
            epoch_start = time.monotonic()
            learning_rate = optimizer.param_groups[-1]["lr"]
            frozen = set_backbone_frozen(model, hp, epoch)
            trained.train()
            total_loss, correct, seen = 0.0, 0, 0
            progress = EpochProgress(epoch, hp.epochs, count // processes)
            for images, y in train_source.epoch(rng, multiple, share or distributed.Share()):
                batch_loss, batch_correct = step.run(images, y)
                total_loss += batch_loss
                correct += batch_correct
                seen += len(y)
                if writer_process:
                    progress.advance(len(y))
            if writer_process:
                progress.finish()
            train_seconds = time.monotonic() - epoch_start
            total_loss, correct, seen = distributed.sum_all(total_loss, correct, seen)
            scheduler.step()
            val_logits, val_y = evaluate_batches(model, val_source, mean, std, memory_format,
                                                 device)
            val_loss = float(val_loss_fn(val_logits, val_y))
            val_accuracy = float((val_logits.argmax(1) == val_y).float().mean())
            train_accuracy = correct / max(seen, 1)
            seconds = time.monotonic() - epoch_start
            rate = seen / max(train_seconds, 1e-9)
            writer.writerow([epoch, f"{total_loss / max(seen, 1):.5f}", f"{train_accuracy:.5f}",
                             f"{val_loss:.5f}", f"{val_accuracy:.5f}", f"{learning_rate:g}",
                             f"{seconds:.1f}", f"{rate:.1f}"])
            log_file.flush()
            log(f"epoch {epoch:2d}/{hp.epochs}: train loss {total_loss / max(seen, 1):.4f} "
                f"acc {train_accuracy:.4f} | val loss {val_loss:.4f} acc {val_accuracy:.4f} | "
                f"lr {learning_rate:g}{' (backbone frozen)' if frozen else ''} | {seconds:.1f}s, "
                f"{rate:.0f} images/s")
            # A tie goes to the later epoch: it has trained longer (a small validation
            # set ties often).
            if val_accuracy >= best_accuracy:
                best_accuracy, best_epoch = val_accuracy, epoch
                if writer_process:
                    torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                                "mean": mean, "std": std,
                                "channels": channels, "classes": classes, "input_size": size,
                                "input_width": sample.shape[2], "input_height": sample.shape[1],
                                "num_layers": hp.num_layers,
                                "widths": list(hp.widths), "blocks": list(hp.blocks),
                                "epoch": epoch, "val_accuracy": val_accuracy}, best_path)
            if optimizer.param_groups[-1]["lr"] < learning_rate:
                stopper.learning_rate_dropped()  # the next epoch runs at the new rate
            # Every process has the same validation figures, so the same early stop.
            if hp.early_stopping and stopper.update(epoch, val_accuracy):
                stop_reason = (f"early stopping after epoch {epoch}: validation accuracy did not "
                               f"improve by {hp.early_stopping_tolerance:.0%} (relative) for "
                               f"{hp.early_stopping_patience} epochs")
                break
            elapsed_minutes = (time.monotonic() - started) / 60
            over_budget = hp.max_minutes > 0 and epoch < hp.epochs and \
                elapsed_minutes + seconds / 60 > hp.max_minutes
            if distributed.any_rank(over_budget):  # clocks differ: one stops all
                stop_reason = (f"time budget: another epoch would pass --max_minutes="
                               f"{hp.max_minutes:g} ({elapsed_minutes:.1f} min used)")
                break
    result = TrainResult(best_epoch, best_accuracy, epoch, stop_reason,
                         time.monotonic() - started, mean, std)
    log(f"training stopped: {stop_reason}; best validation accuracy {best_accuracy:.4f} "
        f"at epoch {best_epoch}")
    if share is not None:
        torch.distributed.barrier()  # rank 0's best.pt is written
    best, _ = load_checkpoint(best_path)
    if writer_process:
        with open(os.path.join(out_dir, "train_result.json"), "w") as f:
            json.dump(asdict(result), f, indent=1)
    return best, result


def load_checkpoint(path: str) -> Tuple[nn.Module, Dict]:
    """The model in eval mode, and what was saved with it (mean, std, epoch, ...)."""
    checkpoint = torch.load(path, map_location="cpu")
    model = architectures.build(checkpoint.get("num_layers", 0), checkpoint["channels"],
                                checkpoint["classes"], checkpoint["input_size"],
                                checkpoint["widths"], checkpoint["blocks"])
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return model, {k: v for k, v in checkpoint.items() if k != "state_dict"}
