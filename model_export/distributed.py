"""Training on several processes, with PyTorch's own engine:

    torchrun --nproc_per_node N --redirects 1 --tee 1 -m model_export train ...

(or `--nnodes`/`--rdzv_endpoint` for several machines). Debian 12's
torchrun (torch 1.13 under Python 3.11) needs `--redirects 1 --tee 1`:
without them it stops with "AttributeError: 'NoneType' object has no
attribute 'get'", as its parser turns the default "0" into None (Python
3.11's Flag iteration skips the zero member). With them each process's
output is shown prefixed with its rank, as usual. torchrun sets
RANK, WORLD_SIZE and LOCAL_RANK; train() then runs DistributedDataParallel
over gloo on CPU or nccl on CUDA. --mini_batch_size is the global batch,
as in SageMaker's algorithm: each global batch is cut into WORLD_SIZE
contiguous shares, one per process, and the gradients are averaged; batch
norm's statistics come from rank 0's share (DDP broadcasts its buffers).
Only rank 0 writes the checkpoints and the log.

Hyperparameters.ghost_shares gives a single process the same cut (each
share a forward and backward of its own, the gradients summed, batch norm
statistics from the first share only), which is how a test checks that N
processes train the model one process would.
"""
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Share:
    """Which part of every global batch a process takes: `rank` of `size`."""
    rank: int = 0
    size: int = 1

    def bounds(self, count: int) -> Tuple[int, int]:
        """[start, end) of this share of a batch of `count` (a multiple of size)."""
        return self.rank * count // self.size, (self.rank + 1) * count // self.size


def from_environ(environ: Mapping[str, str]) -> Optional[Share]:
    """This process's share when torchrun started several; None for one."""
    size = int(environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return None
    rank = int(environ["RANK"])
    if not 0 <= rank < size:
        raise ValueError(f"RANK {rank} is not in 0..{size - 1} (WORLD_SIZE {size})")
    return Share(rank, size)


def device_for(setting: str, share: Optional[Share], environ: Mapping[str, str]) -> torch.device:
    """--device auto|cpu|cuda: CUDA when present (auto) or asked for; under
    torchrun, the GPU of LOCAL_RANK."""
    if setting not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device {setting}: expected auto, cpu or cuda")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: this machine's torch sees no CUDA device "
                         "(--device auto uses the CPU then)")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    local = int(environ.get("LOCAL_RANK", "0")) if share else 0
    return torch.device("cuda", local)


def start(device: torch.device) -> None:
    """Joins the process group torchrun set up (its env:// rendezvous)."""
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool) -> bool:
    """True on every process when it is true on one (a stop decided by rank
    0's clock must stop all, or the others wait for it forever)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([1 if flag else 0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def sum_all(*values: float) -> Tuple[float, ...]:
    """Each value summed over every process (itself alone without torchrun)."""
    if not dist.is_initialized():
        return values
    summed = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(summed)
    return tuple(summed.tolist())


def is_writer(share: Optional[Share]) -> bool:
    return share is None or share.rank == 0
