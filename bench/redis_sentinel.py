"""A private Redis primary, its replica and three Sentinels on spare loopback ports: the
failover make chaos and tests/integration/test_redis_failover.py cause without touching the
machine's Redis. Processes are this object's children, so a node is killed by its own pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import redis

from bench.redis_private import spare_port, wait

MASTER = "onegrid"
DOWN_AFTER_MS = 1000  # how long a silent primary is given before the Sentinels agree it is down


class SentinelSet:
    def __init__(self, workdir: Path, master: str = MASTER):
        self.dir, self.master = Path(workdir), master
        self.data_ports = [spare_port(), spare_port()]
        self.sentinel_ports = [spare_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen] = {}

    # -- what the services are given ---------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports),
            "REDIS_MASTER_NAME": self.master,
            "REDIS_URL": f"redis://127.0.0.1:{self.data_ports[0]}/0",  # its db; the host is the Sentinels'
        }

    def primary_port(self) -> int:
        for port in self.sentinel_ports:
            try:
                _, found = redis.Redis(port=port, socket_timeout=1).sentinel_get_master_addr_by_name(self.master)
                return int(found)
            except (redis.RedisError, TypeError):
                continue
        raise RuntimeError("no Sentinel names a primary")

    # -- processes -----------------------------------------------------------------------
    def _data(self, port: int, replica_of: int | None) -> None:
        node = self.dir / f"redis-{port}"
        node.mkdir(parents=True, exist_ok=True)
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node), "--save", ""]
        cmd += ["--appendonly", "yes", "--appendfsync", "everysec", "--logfile", str(node / "redis.log")]
        if replica_of:
            cmd += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.procs[port] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: redis.Redis(port=port).ping(), f"redis on {port}")

    def _sentinel(self, port: int) -> None:
        conf = self.dir / f"sentinel-{port}.conf"  # Sentinel rewrites its file: one each
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.dir}\nlogfile {self.dir / f'sentinel-{port}.log'}\n"
            f"sentinel monitor {self.master} 127.0.0.1 {self.data_ports[0]} 2\n"
            f"sentinel down-after-milliseconds {self.master} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.master} 10000\n"
            f"sentinel parallel-syncs {self.master} 1\n"
        )
        self.procs[port] = subprocess.Popen(
            ["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def start(self) -> SentinelSet:
        primary, replica = self.data_ports
        self._data(primary, None)
        self._data(replica, primary)
        wait(lambda: redis.Redis(port=replica).info("replication")["master_link_status"] == "up", "replica in sync")
        for port in self.sentinel_ports:
            self._sentinel(port)
        for port in self.sentinel_ports:  # each knows the replica and the other two
            s = redis.Redis(port=port, decode_responses=True)
            wait(
                lambda s=s: (
                    int(s.sentinel_master(self.master)["num-other-sentinels"]) == 2
                    and len(s.sentinel_slaves(self.master)) == 1
                ),
                f"sentinel {port} sees the set",
            )
        return self

    def kill_primary(self) -> int:
        """SIGKILL the primary: no shutdown, no last AOF flush. Returns its port."""
        port = self.primary_port()
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait(10)
        return port

    def await_failover(self, old: int, timeout: float = 60) -> int:
        wait(lambda: self.primary_port() != old, "the Sentinels promote the replica", timeout)
        new = self.primary_port()
        wait(lambda: redis.Redis(port=new).info("replication")["role"] == "master", "the new primary", timeout)
        return new

    def rejoin(self, port: int) -> None:
        """Start a killed node again as the new primary's replica, as Sentinel would order it
        (a deployment's init asks the Sentinels the same way). Started as a primary, it would
        wait for a Sentinel to send REPLICAOF: one in TILT on a loaded machine, or one that
        missed the new configuration, leaves it a primary of its own (stale data, no replica
        for the new primary, whose WAITs then fail).

        Done when the set is whole again: whichever node the Sentinels name primary has the
        other as a replica in sync. On a loaded machine the Sentinels may fail over a second
        time while it syncs (a primary silent for DOWN_AFTER_MS), so the rejoined node may be
        the primary by then; that is a whole set too."""
        self._data(port, self.primary_port())
        try:
            wait(self._whole, f"{port} back and the set whole", timeout=120)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; {self.describe()}") from None
        wait(self._replica_seen, "every Sentinel lists the replica", timeout=60)

    def _whole(self) -> bool:
        primary = self.primary_port()
        replica = next(p for p in self.data_ports if p != primary)
        info = redis.Redis(port=replica, socket_timeout=1).info("replication")
        return (
            info.get("role") == "slave"
            and int(info.get("master_port", 0)) == primary
            and info.get("master_link_status") == "up"
        )

    def describe(self) -> str:
        """What each node and Sentinel says, for a failure message."""
        parts = []
        for port in self.data_ports:
            try:
                info = redis.Redis(port=port, socket_timeout=1).info("replication")
                keys = ("role", "master_port", "master_link_status", "master_sync_in_progress", "connected_slaves")
                parts.append(f"{port}: " + " ".join(f"{k}={info.get(k)}" for k in keys))
            except redis.RedisError as exc:
                parts.append(f"{port}: {exc}")
        for port in self.sentinel_ports:
            try:
                addr = redis.Redis(port=port, socket_timeout=1).sentinel_get_master_addr_by_name(self.master)
                parts.append(f"sentinel {port} names {addr}")
            except redis.RedisError as exc:
                parts.append(f"sentinel {port}: {exc}")
        return "; ".join(parts)

    def _replica_seen(self) -> bool:
        primary = self.primary_port()
        replica = next(p for p in self.data_ports if p != primary)
        for sentinel in self.sentinel_ports:
            replicas = redis.Redis(port=sentinel, decode_responses=True, socket_timeout=1).sentinel_slaves(self.master)
            up = [r for r in replicas if int(r["port"]) == replica and not r["is_sdown"]]
            if not up:
                return False
        return True

    def primary(self) -> redis.Redis:
        return redis.Redis(port=self.primary_port())

    @contextmanager
    def patient(self, down_after_ms: int = 120_000):
        """The Sentinels wait this long before calling a silent primary down: a restart or a
        stall of the primary is then that fault, not a failover."""

        def down_after(ms: int) -> None:
            for port in self.sentinel_ports:
                redis.Redis(port=port).execute_command("SENTINEL", "SET", self.master, "down-after-milliseconds", ms)

        down_after(down_after_ms)
        try:
            yield
        finally:
            down_after(DOWN_AFTER_MS)

    def restart_primary(self) -> int:
        """SIGTERM (Redis flushes its append-only file and exits), then start it again as the
        primary it was; its replica reconnects. Returns its port."""
        port = self.primary_port()
        with self.patient():
            self.procs[port].terminate()
            self.procs[port].wait(30)
            self._data(port, None)
            replica = next(p for p in self.data_ports if p != port)
            wait(
                lambda: redis.Redis(port=replica).info("replication").get("master_link_status") == "up",
                "the replica back in sync",
                timeout=90,
            )
        return port

    def stall_primary(self, seconds: float) -> int:
        """SIGSTOP the primary for `seconds` (a Redis that hangs, connections open), then
        SIGCONT. Returns its port."""
        port = self.primary_port()
        with self.patient():
            self.procs[port].send_signal(signal.SIGSTOP)
            try:
                time.sleep(seconds)
            finally:
                self.procs[port].send_signal(signal.SIGCONT)
            wait(lambda: redis.Redis(port=port).ping(), "the primary after its stall")
        return port

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)

    def __enter__(self) -> SentinelSet:
        try:
            return self.start()
        except BaseException:  # a set half started is still this object's children
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
