"""A redis-server of a benchmark's own on a spare port: its figures are clean of other
tenants' keys, and restarting it disturbs nobody (make chaos restarts one; bench.memory
measures one)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self, workdir: Path, port: int | None = 6390, appendonly: bool = True):
        self.port, self.dir, self.appendonly = port or spare_port(), Path(workdir), appendonly

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def start(self) -> PrivateRedis:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"] if self.appendonly else ["--appendonly", "no"]
        )
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                *persistence,
                "--save",
                "",
                "--dir",
                str(self.dir),
                "--daemonize",
                "yes",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            check=True,
        )
        wait(lambda: self.client().ping(), "private redis")
        return self

    def restart(self) -> None:
        self.client().shutdown(nosave=False)  # SHUTDOWN flushes the append-only file
        time.sleep(0.5)
        self.start()

    def stop(self) -> None:
        try:
            self.client().shutdown(nosave=True)
        except redis.ConnectionError:
            pass

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - still coming up
            pass
        time.sleep(0.2)
    raise TimeoutError(what)
