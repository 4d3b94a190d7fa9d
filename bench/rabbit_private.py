"""A RabbitMQ node of a test's or benchmark's own, on spare ports, and a TCP proxy that can
stall: faults (a memory alarm, a broker that stops answering) that must not touch the shared
broker every other run here uses. Needs Debian's rabbitmq-server (run as root, as here)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import requests

from bench.redis_private import spare_port, wait

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the scripts themselves: the wrappers switch user and HOME
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"  # (HOME holds the Erlang cookie node and CLI share)


def available() -> bool:
    return Path(SERVER).exists() and Path(CTL).exists()


class PrivateRabbit:
    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.port, self.dist_port, self.http_port = spare_port(), spare_port(), spare_port()
        self.node = f"og{self.port}@localhost"
        self.proc: subprocess.Popen | None = None

    @property
    def amqp_base(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        """What points OneGrid (its settings) at this node."""
        return {"ONEGRID_AMQP_BASE": self.amqp_base, "RABBITMQ_MANAGEMENT_URL": self.management_url}

    def start(self) -> PrivateRabbit:
        for sub in ("mnesia", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"management.tcp.port = {self.http_port}\nmanagement.tcp.ip = 127.0.0.1\n"
        )
        env = {
            **self._env(),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
        }
        out = (self.dir / "server.out").open("wb")
        # a session of its own: if the polite stop fails, the whole group (the script and the
        # Erlang VM it starts) is killed, not just the script
        self.proc = subprocess.Popen([SERVER], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait(lambda: requests.get(self.management_url + "/api/overview", timeout=2).ok, "private rabbitmq", 120)
        return self

    def _env(self) -> dict[str, str]:
        """HOME holds the Erlang cookie: the node and its CLI must share one."""
        return {**os.environ, "HOME": str(self.dir)}

    def ctl(self, *args: str) -> str:
        return subprocess.run(
            [CTL, "-n", self.node, *args], check=True, capture_output=True, text=True, timeout=180, env=self._env()
        ).stdout

    def memory_alarm(self, on: bool) -> None:
        """Raise (a watermark no node can stay under) or clear RabbitMQ's memory alarm."""
        self.ctl("set_vm_memory_high_watermark", "0.0000001" if on else "0.4")

    def disk_alarm(self, on: bool) -> None:
        """Raise (a free-disk limit no disk meets) or clear RabbitMQ's disk alarm."""
        self.ctl("set_disk_free_limit", "100000GB" if on else "50MB")

    def restart(self) -> None:
        """The RabbitMQ application stopped and started again (every connection dropped);
        durable queues and their messages come back."""
        self.ctl("stop_app")
        self.ctl("start_app")
        self.ctl("await_startup")

    def alarmed(self) -> bool:
        """A resource alarm is in effect now (the management API only learns it seconds later)."""
        return self.ctl("eval", "rabbit_alarm:get_alarms().").strip() != "[]"

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.ctl("stop")
            self.proc.wait(60)
        except (subprocess.SubprocessError, OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(60)
        self.proc = None

    def __enter__(self) -> PrivateRabbit:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class StallProxy:
    """Forwards 127.0.0.1:<port> to a target; `stall()` stops forwarding either way (the
    connections stay open, nothing is answered: a broker that hangs), `resume()` goes on."""

    def __init__(self, target_port: int, port: int | None = None):
        self.target, self.port = target_port, port or spare_port()
        self._flowing = threading.Event()
        self._flowing.set()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:  # the broker is restarting: refused, as the broker itself would
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                self._flowing.wait()  # held here while stalled: the bytes wait, none are lost
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self._server.close()
