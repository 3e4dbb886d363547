"""A lean open-loop HTTP/1.1 load client (raw asyncio, keep-alive connections) for benchmarks whose client shares
the cores with the server: requests are sent on a fixed schedule whatever the answers (open loop), and each
latency is counted from the request's scheduled send time, so queueing in the client or the server shows.

Connections are opened up front (``connections``) and more only when every open one is busy; a request takes the
connection idle longest (FIFO), so a busy server process, whose connections stay busy, gets fewer new requests
(the way a least-connections balancer spreads load over the workers of one port). Only what the benchmarks
need: GET, ``Content-Length`` or chunked bodies, no TLS, no redirects.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class LoadResult:
    """One open-loop run: per request, its latency in seconds (NaN: failed) and status (0: no answer)."""

    latency: np.ndarray
    status: np.ndarray
    send_lag: np.ndarray  # seconds from the scheduled time to the request's write (the client's own delay)
    seconds: float  # wall time of the run
    client_cpu_s: float  # CPU seconds this (client) process used during the run
    connections: int  # connections opened

    @property
    def failed(self) -> int:
        return int((self.status != 200).sum())

    def percentiles_ms(self) -> tuple[float, float]:
        """p50 and p99 in ms over the answered requests (NaN when none was answered)."""
        ok = self.latency[~np.isnan(self.latency)]
        if not len(ok):
            return float("nan"), float("nan")
        p50, p99 = np.percentile(ok, [50, 99]) * 1e3
        return float(p50), float(p99)

    @property
    def client_cpu_s_per_1000(self) -> float:
        return self.client_cpu_s / max(1, len(self.latency)) * 1000


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, request: bytes) -> int:
        """Send one request and read its whole answer; returns the status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        if close:
            raise ConnectionResetError("the server closed the connection")
        return status

    def close(self) -> None:
        self.writer.close()


async def _open_loop(
    host: str,
    port: int,
    paths: list[str],
    headers: dict[str, str],
    rate: float,
    seconds: float,
    connections: int,
    max_connections: int,
) -> LoadResult:
    n = max(1, int(rate * seconds))
    latency = np.full(n, np.nan)
    status = np.zeros(n, np.int32)
    send_lag = np.full(n, np.nan)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode() for p in paths]
    idle: asyncio.Queue[_Conn] = asyncio.Queue()
    opened = live = 0

    async def connect() -> _Conn:
        nonlocal opened, live
        opened, live = opened + 1, live + 1
        try:
            return _Conn(*await asyncio.open_connection(host, port))
        except OSError:
            live -= 1
            raise

    for _ in range(connections):  # one at a time: the server processes sharing the port each accept some
        idle.put_nowait(await connect())
        await asyncio.sleep(0.002)

    async def one(i: int, due: float) -> None:
        nonlocal live
        conn = None
        try:
            if not idle.empty() or live >= max_connections:
                conn = await idle.get()
            else:
                conn = await connect()
            send_lag[i] = time.perf_counter() - due
            status[i] = await conn.get(requests[i % len(requests)])
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            if conn is not None:
                conn.close()
                live -= 1
            return
        latency[i] = time.perf_counter() - due if status[i] == 200 else np.nan
        idle.put_nowait(conn)

    cpu0, t_start = time.process_time(), time.perf_counter()
    t0 = t_start + 0.05
    tasks = []
    for i in range(n):
        due = t0 + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    wall, cpu = time.perf_counter() - t_start, time.process_time() - cpu0
    while not idle.empty():
        idle.get_nowait().close()
    return LoadResult(latency, status, send_lag, wall, cpu, opened)


def open_loop(
    url: str,
    paths: list[str],
    headers: dict[str, str],
    rate: float,
    seconds: float,
    connections: int = 32,
    max_connections: int = 256,
) -> LoadResult:
    """GET ``paths`` (in turn) at ``rate`` requests a second for ``seconds`` against ``url``
        (``http://host:port``), on the uvloop event loop when it is installed. ``connections`` are opened first, more
    while every one is busy, up to ``max_connections`` (then a request waits for one, its latency still counted
    from its scheduled time)."""
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    coro = _open_loop(host, int(port or 80), paths, headers, rate, seconds, connections, max_connections)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)
