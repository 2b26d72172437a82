"""Start ``bascule serve`` as a real process on a free loopback port, for black-box tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.run import free_port

# The installed console script, as users run it.
BASCULE = [str(Path(sys.executable).parent / "bascule")]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any BASCULE_* setting of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
    env.update(extra)
    return env


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def serving(
    database_url: str,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    uvicorn: str | None = None,
    ready: str = "/rest/v1/admin/health",
    wrapper: tuple[str, ...] = (),
) -> Iterator[Server]:
    """Run ``bascule serve`` until the block ends; fail with its output if it does not start
    (answer 200 at ``ready``). With ``uvicorn``, run ``uvicorn ARGS... UVICORN`` instead;
    with ``wrapper``, run the command through it (``setpriv ... --``)."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    full_env = clean_env(BASCULE_DATABASE_URL=database_url, **(env or {}))
    command = [*wrapper, *([sys.executable, "-m", "uvicorn"] if uvicorn else [*BASCULE, "serve"])]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), *args, *filter(None, [uvicorn])],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=tmp_path,
            text=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_answering(
            f"{server.url}{ready}",
            server.output,
            exited=lambda: process.poll() is not None,
            what=command[-1],
        )
        yield server
    finally:
        stop(process)


def wait_answering(
    url: str,
    output: Callable[[], str],
    *,
    timeout: float = 30,
    exited: Callable[[], bool] = lambda: False,
    what: str = "the server",
) -> None:
    """Poll ``url`` until it answers 200; fail with ``output()`` once ``exited()`` is true
    or past ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if exited():
            raise AssertionError(f"{what} exited early:\n{output()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not answer {url} in {timeout} s:\n{output()}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def raw_request(url: str, target: str, method: str = "GET") -> int:
    """Send a request line exactly as given (no client-side normalisation); the status."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def leave_mid_body(url: str, target: str, method: str = "POST", headers: str = "") -> None:
    """Send a request line, headers announcing 1000 bytes of body and 10 of them, then go."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{headers}"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
            + b'{"message"'
        )
        time.sleep(0.2)  # the server has read what was sent before the connection goes
