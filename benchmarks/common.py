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


def child_pids(pid: int) -> list[int]:
    """The live (not zombie) processes whose parent is ``pid``, from ``/proc``, ascending."""
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


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far, all its threads, those that ended included
    (``/proc/<pid>/stat``); 0.0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3, utime 14, stime 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def glassfeed_serve(
    env: dict[str, str], workers: int, log: Path, *, start_timeout: float = 300.0
) -> Iterator[tuple[subprocess.Popen[bytes], str, list[int]]]:
    """``glassfeed serve --workers N`` on a free loopback port with ``env`` added to the environment (its output
    to ``log``); yields ``(process, base_url, serving pids)`` once ``/healthz`` answers 200 and all N workers have
    started (one worker: the process itself serves), and stops it with SIGTERM on exit (SIGKILL after 30 s)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "glassfeed.cli", "serve", "--port", str(port), "--workers", str(workers)],
            env={**os.environ, **env},
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def serving() -> list[int]:
        return [proc.pid] if workers == 1 else child_pids_running(proc.pid, "spawn_main")

    def all_started(pids: list[int]) -> bool:
        """Every worker has built its app (uvicorn logs "Started server process [pid]" after the factory ran):
        one that is still loading accepts no connection, so the first ones would all go to the others."""
        if workers == 1:
            return pids == [proc.pid]  # it answered /healthz: its app is built
        with log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return len(pids) == workers and all(f"Started server process [{p}]" in text for p in pids)

    try:
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}; see {log}")
            try:
                up = httpx.get(url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                up = False
            if up and all_started(serving()):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"serve did not start {workers} workers within {start_timeout:.0f} s; see {log}")
        yield proc, url, serving()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def child_pids_running(pid: int, marker: str) -> list[int]:
    """``child_pids(pid)`` whose command line contains ``marker`` (uvicorn's workers: ``spawn_main``)."""
    out = []
    for child in child_pids(pid):
        with contextlib.suppress(OSError):
            if marker.encode() in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(child)
    return out
