"""Where a run ran: the CPU model, its core count, and the flags that change
which numeric kernels PyTorch and oneDNN pick (avx512_bf16, amx_bf16,
avx512_vnni). The test command prints it when it starts
(`/usr/bin/python3 -m scripts.machine`); every bench report records it.
"""
import os
import platform

NUMERIC_FLAGS = ("avx512_bf16", "amx_bf16", "avx512_vnni")


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str) -> set:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def describe() -> str:
    """One line, e.g. 'AMD EPYC, 2 CPUs, avx512_bf16 yes, amx_bf16 no, ...'."""
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
    except OSError:
        cpuinfo = ""
    flags = cpu_flags(cpuinfo)
    numeric = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in NUMERIC_FLAGS)
    return f"{cpu_model(cpuinfo)}, {os.cpu_count()} CPUs, {numeric}, {platform.platform()}"


if __name__ == "__main__":
    print(f"machine: {describe()}")
