"""Running the service: load a saved policy and serve it with uvicorn, in the foreground or a background thread."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from drive_vla.serve.app import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_WAITING, DEFAULT_WAIT_TIMEOUT_S, create_app


def load_policy(policy_dir: str | Path, quantize: str = "none") -> Any:
    """``DrivingPolicy.from_pretrained(policy_dir, quantize=...)`` after checking the directory exists."""
    path = Path(policy_dir)
    if not path.is_dir():
        raise ValueError(
            f"policy_dir: got {str(path)!r}, expected a directory written by DrivingPolicy.save_pretrained"
        )
    from drive_vla.policy import DrivingPolicy

    return DrivingPolicy.from_pretrained(path, quantize=quantize)


def serve(
    policy_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_level: str = "info",
    quantize: str = "none",
    max_waiting: int = DEFAULT_MAX_WAITING,
    wait_timeout_s: float = DEFAULT_WAIT_TIMEOUT_S,
) -> None:
    """Load the policy saved in ``policy_dir`` and serve it until interrupted (blocking).

    Args:
        policy_dir: a directory written by ``DrivingPolicy.save_pretrained``.
        host: interface to bind; the default answers only on this machine.
        port: TCP port.
        max_body_bytes: larger request bodies are answered 413.
        log_level: uvicorn log level.
        quantize: "none" or "int8" (drive_vla.model.quantize).
        max_waiting, wait_timeout_s: the bounded wait for the model (beyond it: 503 with Retry-After).
    """
    policy = load_policy(policy_dir, quantize)
    app = create_app(
        policy,
        model_name=Path(policy_dir).resolve().name,
        max_body_bytes=max_body_bytes,
        max_waiting=max_waiting,
        wait_timeout_s=wait_timeout_s,
    )
    uvicorn.run(app, host=host, port=int(port), log_level=log_level, timeout_keep_alive=30)


def free_port_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening-ready TCP socket bound to a free port chosen by the OS (port 0)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


class BackgroundServer:
    """Serve an ASGI app with uvicorn in a daemon thread on a free loopback port (for tests and notebooks).

    Use as a context manager; ``url`` is the base URL once started.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", log_level: str = "warning") -> None:
        self._sock = free_port_socket(host)
        self.host, self.port = self._sock.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self, timeout_s: float = 20.0) -> BackgroundServer:
        """Start the thread and wait until GET /health answers 200."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._server.started:
                try:
                    if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            if not self._thread.is_alive():
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server at {self.url} did not answer /health within {timeout_s} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
