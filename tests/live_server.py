"""A real ``uvicorn`` process serving the API on a free loopback port, for tests that need the network path
(durability under ``kill -9``, the OpenAPI fuzz run). Its stderr goes to a file, read by ``log()``; pass the
previous ``port`` to restart "the same" server after a kill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``uvicorn --factory glassfeed.api.app:create_app`` on ``db`` with service key ``key``; started on creation,
    ready when ``/healthz`` answers 200."""

    def __init__(
        self,
        db: Path,
        key: str,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
    ):
        self.db = Path(db)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.db.with_name(f"{self.db.stem}-server-{self.port}-{time.monotonic_ns()}.log")
        environ = {**os.environ, "GLASSFEED_DB": str(self.db), "GLASSFEED_API_KEY": key, **(env or {})}
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "glassfeed.api.app:create_app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "warning"],
                env=environ,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not answer /healthz within {start_timeout:.0f} s: {self.log()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        """Everything the server wrote to stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """``kill -9``: no shutdown handlers, no flush; the store must recover on the next start."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """A graceful stop (SIGTERM), then SIGKILL if it has not exited within 10 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
