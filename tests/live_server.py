"""A real ``uvicorn`` process serving the API on a free loopback port, for tests that need the network path
(durability under ``kill -9``, the OpenAPI fuzz run). Its stderr goes to a file, read by ``log()``; pass the
previous ``port`` to restart "the same" server after a kill. ``start_server``: an app object served by uvicorn in a
thread of the test process (the Chromium tests, which configure the app in Python)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pg_support import store_location


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app: Any, log_level: str = "warning", timeout_s: float = 30.0) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; (its base URL, a function that stops it).
    Raises when uvicorn has not started within ``timeout_s``."""
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    t0 = time.time()
    while not srv.started:
        if time.time() - t0 > timeout_s or not th.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)

    def stop() -> None:
        srv.should_exit = True
        th.join(10)

    return f"http://127.0.0.1:{port}", stop


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
        # the file, or the PostgreSQL schema standing in for it (GLASSFEED_TEST_STORE=postgresql)
        location = store_location(self.db)
        environ = {**os.environ, "GLASSFEED_DB": location, "GLASSFEED_API_KEY": key, **(env or {})}
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


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from ``/proc``), ascending."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return sorted(out)


class ServeWorkers:
    """``glassfeed --config <file> serve --db <db> --workers N`` (``db`` must exist; the file gives service key
    ``key``, so the workers get their settings only the way ``serve`` hands them on): uvicorn's supervisor and its N
    worker processes on one free port; ready when ``/healthz`` answers 200 and N workers run."""

    def __init__(
        self, db: Path, key: str, workers: int = 2, *, env: dict[str, str] | None = None, start_timeout: float = 60.0
    ):
        self.db, self.workers = Path(db), workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.db.with_name(f"{self.db.stem}-workers-{self.port}-{time.monotonic_ns()}.log")
        config = self.db.with_name(f"{self.db.stem}-workers-{self.port}.toml")
        config.write_text(f'[api]\nkey = "{key}"\n')
        environ = {k: v for k, v in os.environ.items() if k not in ("GLASSFEED_DB", "GLASSFEED_API_KEY")}
        environ.update(env or {})
        cmd = [sys.executable, "-c", "from glassfeed.cli import app; app()", "--config", str(config), "serve",
               "--db", store_location(self.db), "--port", str(self.port), "--workers", str(workers)]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, env=environ, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                up = httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                up = False
            if up and len(self.worker_pids()) == workers:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"serve did not start {workers} workers within {start_timeout:.0f} s: {self.log()[-2000:]}")

    def worker_pids(self) -> list[int]:
        """The supervisor's worker processes (multiprocessing ``spawn`` children; not its resource tracker)."""
        pids = []
        for pid in child_pids(self.proc.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                pids.append(pid)
        return pids

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM to the supervisor (it stops its workers), then SIGKILL to all if not gone within 15 s."""
        if self.proc.poll() is None:
            workers = self.worker_pids()
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                for pid in workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> ServeWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
