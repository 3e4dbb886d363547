"""What every benchmark prints beside its numbers: the machine it ran on."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path


def machine() -> str:
    """Platform, CPU model, core count, Python version and the current load average."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    return (
        f"{platform.platform()} | {cpu} | {os.cpu_count()} cores | Python {platform.python_version()} | "
        f"load {os.getloadavg()[0]:.2f}"
    )
