"""A create_app served by uvicorn in a thread on a free local port, for the tests that drive it over the network
(the Chromium tests): one definition of starting it, waiting for it and stopping it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any


def start_server(app: Any, log_level: str = "warning", timeout_s: float = 30.0) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` on 127.0.0.1 at a free port; (its base URL, a function that stops it). Raises when uvicorn has
    not started within ``timeout_s``."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
