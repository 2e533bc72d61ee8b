"""The real server (`commons serve`, one worker unless told) as a child process, killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def commons_command() -> list[str]:
    """The `commons` script next to this interpreter (the venv's), else the CLI module."""
    script = Path(sys.executable).with_name("commons")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "api.cli"]


class ServerStartError(RuntimeError):
    pass


class Server:
    """`commons serve --host 127.0.0.1 --port P` on one database; start, kill -9, restart."""

    def __init__(
        self,
        *,
        database_url: str,
        secret_key: str,
        log_path: Path,
        port: int | None = None,
        workers: int = 1,
    ) -> None:
        self.workers = workers
        self.port = port or free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "COMMONS_DATABASE_URL": database_url,
            "COMMONS_SECRET_KEY": secret_key,
            "COMMONS_LOG_LEVEL": "warning",
            "COMMONS_POOL_SIZE": "10",
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    def start(self, *, timeout: float = 60.0) -> float:
        """Start the server, wait until /api/v1/health answers 200; return the seconds it took."""
        assert self.process is None or self.process.poll() is not None, "server already running"
        began = time.monotonic()
        self._log = self._log or self.log_path.open("ab")
        self._log.write(f"--- start {self.starts + 1}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            [
                *commons_command(),
                "serve",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill reaches it and only it
        )
        self.starts += 1
        deadline = began + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ServerStartError(
                        f"the server exited with {self.process.returncode}; see {self.log_path}"
                    )
                try:
                    if client.get("/api/v1/health").status_code == 200:
                        return time.monotonic() - began
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.kill()
        raise ServerStartError(f"no healthy answer within {timeout:.0f} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no flush, nothing but what the database already committed."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def close(self) -> None:
        self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
