"""Shared benchmark pieces: the machine line every benchmark prints, and a real ``uvicorn`` API process."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


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


@contextlib.contextmanager
def api_server(env: dict[str, str], *, attempts: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``uvicorn --factory glassfeed.api.app:create_app`` on a free loopback port with ``env`` added to the
    environment; yields ``(process, base_url)`` once ``/healthz`` answered 200 (or after ``attempts`` polls)
    and terminates the process on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "glassfeed.api.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(attempts):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(10)
