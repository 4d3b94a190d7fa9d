"""Department systems over mutual TLS, on the real RabbitMQ's 5671 listener
(scripts/ensure-services.sh gives the local broker one, with the county CA in
/etc/rabbitmq/tls or $ONEGRID_LOCAL_CA_DIR).

A throwaway county is onboarded; `onegrid tenant certs` issues one department's client
certificate from the county CA. With it, the department logs in with its own user and
password (PLAIN inside TLS) and publishes a confirmed event; without a client certificate,
with one from another CA, or with the right certificate and a wrong password, it does not
get in."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer

from onegrid.cli.main import main as cli
from onegrid.kernel import topology
from onegrid.operator import certs, ops
from tests.conftest import make_tenant_contracts

pytestmark = pytest.mark.integration
CA_DIR = Path(os.environ.get("ONEGRID_LOCAL_CA_DIR", "/etc/rabbitmq/tls"))
DEPT = "market_regulation"


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    if not (CA_DIR / certs.CA_KEY).is_file():
        pytest.fail(f"no county CA at {CA_DIR}: run `make services` (scripts/ensure-services.sh) as root first")
    tmp = tmp_path_factory.mktemp("tls")
    root, tid = make_tenant_contracts(tmp)
    t, registry = ops.manifest(tid, str(root))
    result = ops.onboard(t, registry=registry)
    creds = {c.principal: c.values for c in result["credentials"]}
    try:
        yield tid, root, creds[f"{tid}.{DEPT}"]["password"], tmp
    finally:
        ops.offboard(tid, delete_data=True, force=True)


def _uri(tid: str, password: str) -> str:
    return f"amqp://{tid}.{DEPT}:{password}@127.0.0.1:5671/{tid}"


def _connect(uri: str, **tls) -> Connection:
    conn = Connection(
        uri,
        ssl={"ca_certs": str(CA_DIR / certs.CA_CERT), "server_hostname": "localhost", **tls},
        connect_timeout=5,
    )
    conn.connect()
    return conn


@pytest.fixture(scope="module")
def issued(county):
    tid, root, _, tmp = county
    out = tmp / "certs"
    assert (
        cli(
            [
                "--dir",
                str(root),
                "tenant",
                "certs",
                tid,
                "--department",
                DEPT,
                "--ca-dir",
                str(CA_DIR),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    folder = out / tid
    assert (folder / f"{DEPT}.key").stat().st_mode & 0o777 == 0o600
    return {"certfile": str(folder / f"{DEPT}.pem"), "keyfile": str(folder / f"{DEPT}.key")}


def test_a_department_with_its_certificate_publishes_over_tls(county, issued):
    tid, _, password, _ = county
    with _connect(_uri(tid, password), **issued) as conn:
        sock = conn.connection.transport.sock
        assert isinstance(sock, ssl.SSLSocket) and sock.version() in ("TLSv1.3", "TLSv1.2")
        peer = sock.getpeercert()
        assert ("commonName", "localhost") in [item for rdn in peer["subject"] for item in rdn]
        channel = conn.channel()
        channel.confirm_select()
        producer = Producer(channel, Exchange(topology.INTAKE, type="topic", passive=True))
        # a confirmed publish on its own routing key: the broker took it over TLS
        producer.publish(b"{}", routing_key=f"{DEPT}.tls_probe", headers={"ce-id": "tls-probe"})


def test_no_client_certificate_is_refused(county):
    tid, _, password, _ = county
    with pytest.raises((ssl.SSLError, OSError, ConnectionError)) as refused:
        _connect(_uri(tid, password)).release()
    # the broker's alert, not a timeout; on a loaded machine the client may read the closed
    # session before the alert (an EOF in the handshake): refused all the same
    assert "CERTIFICATE_REQUIRED" in str(refused.value) or isinstance(refused.value, ssl.SSLEOFError)


def test_a_certificate_from_another_ca_is_refused(county, tmp_path):
    tid, _, password, _ = county
    other = certs.make_ca("some other CA")
    forged = certs.issue(other, f"{tid}.{DEPT}", DEPT, tid)
    paths = certs.write_issued(forged, tmp_path)
    # the broker answers "Unknown CA" (its log) and closes: the client sees the TLS session end
    with pytest.raises(ssl.SSLError) as refused:
        _connect(_uri(tid, password), certfile=str(paths[0]), keyfile=str(paths[1])).release()
    assert "UNKNOWN_CA" in str(refused.value) or isinstance(refused.value, ssl.SSLEOFError)


def test_the_certificate_alone_does_not_log_in(county, issued):
    from amqp.exceptions import AccessRefused

    tid, _, _, _ = county
    with pytest.raises(AccessRefused):
        _connect(_uri(tid, "not-the-password"), **issued).release()
