"""Where and with what a run was trained: versions, threads, device; written into every summary.

``schema_version`` numbers the layout of a run's files: 2 for runs whose summary and checkpoint carry
it; a run without it is schema 1 (written before provenance was recorded), and still loads, reports and
resumes.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

import rethinkgen

SCHEMA_VERSION = 2
CPUINFO = Path("/proc/cpuinfo")


def provenance(device: torch.device) -> dict:
    """The provenance keys of a run's summary.

    Args:
        device: the training device (its name is recorded: the GPU's, or the CPU model's).

    Returns:
        ``schema_version``, ``rethinkgen_version``, ``torch_version``, ``python_version``,
        ``torch_threads`` (the intra-op threads of the training process) and ``device_name``.
    """
    return {"schema_version": SCHEMA_VERSION, "rethinkgen_version": rethinkgen.__version__,
            "torch_version": torch.__version__, "python_version": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "device_name": device_name(device)}


def device_name(device: torch.device) -> str:
    """A readable name of ``device``: the GPU's name for CUDA, else the CPU model (``/proc/cpuinfo``'s
    "model name", or ``platform.processor()`` where there is no such file), "unknown" if neither says."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({_cpu_name()})"
    return _cpu_name()


def _cpu_name() -> str:
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
