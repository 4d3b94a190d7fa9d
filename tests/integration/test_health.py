"""Health that means something: a service whose Redis stalls or stops, or whose broker
connection is cut, stays alive (/livez) but is not ready (/readyz answers 503 within its
timeout, saying which), and becomes ready again when the dependency is back.

The service runs as a process (as deployed) against a PRIVATE redis-server on a free port and
reaches the machine's RabbitMQ through a TCP forwarder on loopback that the test cuts and
restores: the shared broker and Redis are never stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from kombu import Connection

from onegrid.kernel import topology
from tests.conftest import County
from tests.support import wait_until

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Forwarder:
    """A TCP forwarder on loopback. `cut()` closes every forwarded connection and refuses new
    ones (accepted, then closed at once: what a broker that went away looks like); `restore()`
    forwards again."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.open = target, True
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.live: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.live |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            self._close(s)

    def _close(self, s: socket.socket) -> None:
        with self.lock:
            self.live.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def cut(self) -> None:
        self.open = False
        with self.lock:
            live = list(self.live)
        for s in live:
            self._close(s)

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.server.close()


class PrivateRedis:
    """A redis-server of this test's own, on a free port, without persistence."""

    def __init__(self, tmp):
        self.port, self.dir, self.proc = _free_port(), tmp, None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
        )
        wait_until(lambda: _answers(self.port), timeout=10, what="the private redis-server")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("health")
    red = PrivateRedis(tmp)
    from onegrid.operator import ops

    broker = urlsplit(ops.uri("x"))
    proxy = Forwarder((broker.hostname or "127.0.0.1", broker.port or 5672))
    county = County(tmp, services=("routing",), env={"REDIS_URL": red.url})
    uri = urlsplit(county.uri)
    county.services.env["AMQP_URI"] = urlunsplit(
        uri._replace(netloc=f"{uri.username}:{uri.password}@127.0.0.1:{proxy.port}")
    )
    county.services.start()
    yield county, red, proxy
    proxy.restore()
    county.close()
    proxy.close()
    if red.proc.poll() is None:
        os.kill(red.proc.pid, signal.SIGCONT)
        red.stop()


def _get(county, path: str) -> requests.Response:
    return requests.get(county.services.url("routing") + path, timeout=5)


def _not_ready(county, check: str):
    r = _get(county, "/readyz")
    return r.status_code == 503 and r.json()["checks"][check] != "ok" and r.json()  # (a 503 Response is falsy)


def _ready(county):
    r = _get(county, "/readyz")
    return r.status_code == 200 and r.json() == {"status": "ready", "checks": {"broker": "ok", "redis": "ok"}}


def _alive(county) -> None:
    for path in ("/livez", "/health"):
        r = _get(county, path)
        assert r.status_code == 200 and r.json() == {"status": "alive"}, (path, r.text)


def test_ready_when_broker_and_redis_answer(rig):
    county, _, _ = rig
    assert _ready(county)
    _alive(county)
    assert requests.post(county.services.url("routing") + "/readyz", timeout=5).status_code == 405


def test_a_stalled_redis_makes_it_unready_within_the_timeout_not_dead(rig):
    county, red, _ = rig
    os.kill(red.proc.pid, signal.SIGSTOP)  # a Redis that accepts but never answers
    try:
        started = time.monotonic()
        r = _get(county, "/readyz")
        took = time.monotonic() - started
        assert r.status_code == 503 and "no answer within 1s" in r.json()["checks"]["redis"], r.text
        assert r.json()["checks"]["broker"] == "ok"
        assert took < 2.5, f"/readyz took {took:.2f}s with Redis stalled"
        _alive(county)
    finally:
        os.kill(red.proc.pid, signal.SIGCONT)
    wait_until(lambda: _ready(county), timeout=15, what="ready again after Redis answered")


def test_probes_answer_while_every_worker_waits_on_a_stalled_redis(rig):
    """32 workers stuck on Redis: a route that needs a worker waits, the probes do not."""
    county, red, _ = rig
    os.kill(red.proc.pid, signal.SIGSTOP)
    try:
        with Connection(county.uri, transport_options={"confirm_publish": True}) as conn:
            producer = conn.Producer()
            for i in range(40):  # more than max_workers (32): routing looks each case up in Redis
                producer.publish(
                    json.dumps({"id": f"c-{i:016x}"}).encode(),
                    exchange=topology.EVENTS,
                    routing_key="case.registered",
                    headers={"ce-id": f"stall-{i}", "ce-type": "case.registered"},
                    content_type="application/json",
                )
        url = county.services.url("routing")
        with pytest.raises(requests.Timeout):  # nameko's own routes wait for a free worker
            wait_until(lambda: requests.get(url + "/openapi.json", timeout=2) and False, timeout=10, what="a wait")
        for path, status in (("/livez", 200), ("/health", 200), ("/readyz", 503)):
            started = time.monotonic()
            assert requests.get(url + path, timeout=5).status_code == status, path
            assert time.monotonic() - started < 2.5, f"{path} waited for a worker"
    finally:
        os.kill(red.proc.pid, signal.SIGCONT)
    # the stuck handlers find no such cases and go the failure policy's way; the service recovers
    wait_until(lambda: _ready(county), timeout=15, what="ready again after Redis answered")
    assert requests.get(county.services.url("routing") + "/openapi.json", timeout=5).ok


def test_a_stopped_redis_makes_it_unready_and_it_recovers(rig):
    county, red, _ = rig
    red.stop()
    wait_until(lambda: _not_ready(county, "redis"), timeout=10, what="/readyz 503 for Redis")
    _alive(county)
    red.start()
    wait_until(lambda: _ready(county), timeout=15, what="ready again after Redis came back")
    _alive(county)


def test_a_lost_broker_makes_it_unready_and_it_recovers(rig):
    county, _, proxy = rig
    proxy.cut()
    body = wait_until(lambda: _not_ready(county, "broker"), timeout=15, what="/readyz 503 for the broker")
    assert "not connected" in body["checks"]["broker"] and body["checks"]["redis"] == "ok", body
    time.sleep(3)  # kombu retries meanwhile, refused each time
    assert _not_ready(county, "broker")
    _alive(county)
    proxy.restore()
    # kombu's reconnect backs off (2, 4, 6 ... s): within a minute it is consuming again
    wait_until(lambda: _ready(county), timeout=60, what="ready again after the broker came back")
    _alive(county)
    assert county.services.procs["routing"].poll() is None, "the service exited"
