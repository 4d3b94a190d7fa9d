"""notify as a process on a real bus, delivering to real servers on loopback: an HTTP
receiver that verifies the webhook signature, an SMTP server process (aiosmtpd), and an SMS
gateway that first hangs (a dead receiver) and later answers."""

import email
import email.policy
import json
import mailbox
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml

from onegrid.adapters.amqp.bus import Bus
from onegrid.adapters.channels.notify_channels import verify
from onegrid.cli.main import main as cli
from tests.conftest import County, free_port_base
from tests.lifecycle import Story, publish
from tests.support import wait_until

pytestmark = pytest.mark.integration
SECRET = "test-webhook-secret"
CITIZEN = {"kind": "citizen", "id": "12345-0001", "phone": "13800138000"}


class Receiver:
    """A real HTTP server in a thread that records every request (and answers 200)."""

    def __init__(self, port: int = 0):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"headers": dict(self.headers), "body": body, "at": time.time()})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"ok":true}')

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def json(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Hanging:
    """A dead receiver: accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notify")
    webhook, sms = Receiver(), Hanging()
    smtp_port = free_port_base(1) + 1
    maildir = tmp / "maildir"
    smtp = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{smtp_port}",
            "-c",
            "aiosmtpd.handlers.Mailbox",
            str(maildir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: _open(smtp_port), what="the SMTP server")
    county = County(tmp, services=("notify",), env={"ONEGRID_WEBHOOK_SECRET": SECRET})
    manifest = county.contracts / "tenants" / f"{county.id}.yaml"
    doc = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    doc["notify"].update(
        channels={
            "webhook": {
                "url": f"http://127.0.0.1:{webhook.port}/hook",
                "secret_env": "ONEGRID_WEBHOOK_SECRET",
                "timeout_s": 2,
            },
            "email": {"host": "127.0.0.1", "port": smtp_port, "sender": "onegrid@test.invalid", "timeout_s": 5},
            "sms": {
                "url": f"http://127.0.0.1:{sms.port}/sms/send",
                "account": "test",
                "token_env": "SMS_TOKEN",
                "timeout_s": 1,
            },
        },
        delivery={"max_attempts": 3, "base_delay_s": 0.3, "max_delay_s": 1, "jitter": 0.5, "concurrency": 20},
        rate_limit={"per_recipient": 3, "window_s": 3},
    )
    manifest.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    county.services.env["SMS_TOKEN"] = "sms-token"
    county.services.start()
    state = {"county": county, "webhook": webhook, "sms": sms, "maildir": maildir}
    yield state
    county.close()
    webhook.close()
    state["sms"].close()
    smtp.terminate()
    smtp.wait(10)


def _open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _mails(maildir) -> list:
    if not maildir.exists():
        return []
    return [
        email.message_from_bytes(m.as_bytes(), policy=email.policy.default)
        for m in mailbox.Maildir(str(maildir), factory=None, create=False)
    ]


def _outbox(county):
    import redis

    from onegrid.adapters.channels.notifications import Outbox
    from onegrid.kernel import settings

    return Outbox(redis.Redis.from_url(settings.redis_url(), decode_responses=True), county.id)


def test_every_channel_delivers_once_a_dead_gateway_is_parked_and_replayed(env, capsys):
    county, webhook = env["county"], env["webhook"]
    story = Story("c-n1", county.id, grid="410102-001-003-002", reporter=CITIZEN)
    story.registered()
    story.dispatched("urban_management", "water", level="county")
    story.supervised("overdue_acknowledge", department="water")
    published = time.time()
    publish(Bus(county.uri), county.id, story.events)

    # webhook: receipt to the reporter, a dispatch to each department, the overdue reminder and its copy
    wait_until(lambda: len(webhook.requests) >= 5, timeout=20, what="webhook deliveries")
    got = webhook.json()
    assert sorted((g["kind"], g["recipient"]["id"]) for g in got) == [
        ("dispatch", "urban_management"),
        ("dispatch", "water"),
        ("overdue", "water"),
        ("overdue_leader", "water:leader"),
        ("receipt", "12345-0001"),
    ]
    for r in webhook.requests:  # as a receiver checks it
        h = r["headers"]
        assert h["X-OneGrid-Signature"].startswith("sha256=")
        assert verify(SECRET.encode(), h["X-OneGrid-Timestamp"], r["body"], h["X-OneGrid-Signature"])
        assert h["X-OneGrid-Delivery"] == json.loads(r["body"])["id"]
    receipt = next(g for g in got if g["kind"] == "receipt")
    assert receipt["text"].startswith("【郑州市中原区秦岭路街道】您反映的“楼道堆放杂物影响通行”已受理")

    # e-mail: each department's dispatch and the overdue reminder, and the leader's copy
    mails = wait_until(lambda: m if len(m := _mails(env["maildir"])) >= 4 else None, timeout=20, what="e-mails")
    assert sorted(m["To"] for m in mails) == sorted(
        [
            "urban_management@qinling.zhongyuan.example.gov.cn",
            "water@qinling.zhongyuan.example.gov.cn",
            "water@qinling.zhongyuan.example.gov.cn",
            "water.leader@qinling.zhongyuan.example.gov.cn",
        ]
    )
    assert any(m["Subject"] == "[OneGrid] 超期督办 c-n1" and "超时未签收" in m.get_content() for m in mails)
    assert max(r["at"] for r in webhook.requests) - published < 10  # not held up by the SMS gateway

    # SMS: the gateway never answers; three attempts of 1 s, then parked with the reason
    outbox = _outbox(county)
    parked = wait_until(lambda: outbox.parked(), timeout=30, what="the SMS parked")
    assert [(p["channel"], p["kind"], p["address"]) for p in parked] == [("sms", "receipt", "13800138000")]
    assert "timed out" in parked[0]["reason"] and "attempt 3 of 3" in parked[0]["reason"]
    assert cli(["notify", "parked", county.id]) == 0
    assert "timed out" in capsys.readouterr().out

    # a redelivered event sends nothing twice
    publish(Bus(county.uri), county.id, story.events)
    time.sleep(2)
    assert len(webhook.requests) == 5 and len(_mails(env["maildir"])) == 4

    # the gateway comes back on the same port; replay sends the parked SMS, once
    env["sms"].close()
    env["sms"] = gateway = Receiver(env["sms"].port)
    assert cli(["notify", "replay", county.id]) == 0
    wait_until(lambda: gateway.requests, timeout=20, what="the replayed SMS")
    time.sleep(1)
    assert len(gateway.requests) == 1
    sent = gateway.requests[0]
    assert sent["headers"]["Authorization"] == "Bearer sms-token"
    assert json.loads(sent["body"])["to"] == "13800138000" and outbox.parked() == []

    metrics = requests.get(county.services.url("notify") + "/metrics", timeout=5).text
    for line in (
        f'onegrid_notifications_sent_total{{channel="webhook",tenant="{county.id}"}} 5.0',
        f'onegrid_notifications_sent_total{{channel="email",tenant="{county.id}"}} 4.0',
        f'onegrid_notifications_sent_total{{channel="sms",tenant="{county.id}"}} 1.0',
        f'onegrid_notifications_parked_total{{channel="sms",tenant="{county.id}"}} 1.0',
        f'onegrid_notifications_retried_total{{channel="sms",tenant="{county.id}"}} 2.0',
        f'onegrid_notifications_failed_total{{channel="sms",tenant="{county.id}"}} 3.0',
    ):
        assert line in metrics, line
    assert 'onegrid_notification_delivery_seconds_count{channel="webhook"} 5.0' in metrics


def test_a_recipient_is_rate_limited_but_still_gets_everything(env):
    county, webhook = env["county"], env["webhook"]
    start = len(webhook.requests)
    reporter = {"kind": "grid_worker", "id": "GW-RATE"}
    events = []
    for i in range(5):  # five receipts to one grid worker within the 3-per-3-seconds limit
        s = Story(f"c-r{i}", county.id, reporter=reporter)
        events.append(s.registered())
    publish(Bus(county.uri), county.id, events)

    def mine():
        return [r for r in webhook.requests[start:] if json.loads(r["body"])["recipient"]["id"] == "GW-RATE"]

    wait_until(lambda: len(mine()) == 5, timeout=30, what="every receipt, eventually")
    times = sorted(r["at"] for r in mine())
    assert times[3] - times[0] >= 2.5  # the fourth waited for the first to leave the 3 s window
    assert len({json.loads(r["body"])["case_id"] for r in mine()}) == 5
