"""Shared test fixtures: example patients, and servers on loopback.

`start_server` runs `uvicorn api.main:app` in a subprocess on a free port, as `elig serve`
does, and waits for /readyz; `serve_app_in_thread` runs any ASGI app (e.g. a FHIR stub) in a
thread. Both bind 127.0.0.1 only and are stopped by their fixtures.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RULES = ROOT / "rules"
AS_OF = "2026-11-01"


def example(name: str) -> dict:
    """An example patient document (see examples/README.md)."""
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def example_names() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.json"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    """A uvicorn subprocess serving the API."""

    process: subprocess.Popen
    base_url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str) -> str:
        return self.base_url + path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=60, **kwargs)

    def rss_peak_kib(self) -> int:
        """The process's peak resident memory (VmHWM), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM")

    def hangup(self) -> None:
        self.process.send_signal(signal.SIGHUP)


def start_server(log_dir: Path, env: dict[str, str] | None = None, timeout: float = 60) -> LiveServer:
    """Start uvicorn on a free loopback port with a clean `ELIG_*` environment; wait until ready."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ELIG_")}
    clean.update(env or {})
    log = log_dir / f"uvicorn-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=clean, stdout=out, stderr=subprocess.STDOUT)
    server = LiveServer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(server.url("/readyz"), timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"uvicorn not ready in {timeout} s:\n{log.read_text()}")


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> LiveServer:
    """The API over real HTTP, serving the bundled rules with default settings."""
    server = start_server(tmp_path_factory.mktemp("live"), {"ELIG_RULES_DIR": str(RULES)})
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def http(live_server) -> httpx.Client:
    with live_server.client() as client:
        yield client


@contextmanager
def serve_app_in_thread(app, port: int | None = None):
    """Serve an ASGI app with uvicorn in a daemon thread on loopback; yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the threaded server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
