"""A local webhook receiver that checks OneGrid's signature: what the demo points notify at,
and a working example of verifying it (docs/notify.md). It also stands in for the county's SMS
gateway (`POST /sms/send`: the messages notify sends, kept per number, so a simulated citizen
can read the question and reply with `push_reply`) and for the 12345 system (`POST /12345/answers`,
signed like the webhook: the answers, kept per ticket_no).

    python -m sim.notify_receiver --port 8290    # secret from ONEGRID_WEBHOOK_SECRET

`POST` anything else: answered 200 when the signature is valid, 401 when not. `GET /received`:
{received, verified, duplicates, by_kind, sms, hotline_answers, last}. In-process:
`WebhookReceiver(secret).start()`.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from onegrid.adapters.channels.notify_channels import DELIVERY, SIGNATURE, TIMESTAMP, sign, verify


class WebhookReceiver:
    def __init__(self, secret: bytes, host: str = "127.0.0.1", port: int = 0, keep: int = 20):
        self.secret, self.keep = secret, keep
        self.lock = threading.Lock()
        self.counts = {"received": 0, "verified": 0, "duplicates": 0, "by_kind": {}, "sms": 0, "hotline_answers": 0}
        self.last: list[dict] = []
        self.seen: set[str] = set()
        self.sms: dict[str, list[dict]] = defaultdict(list)  # number -> the SMS sent to it, oldest first
        self.answers: dict[str, list[dict]] = defaultdict(list)  # 12345 ticket_no -> its answers
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.rstrip("/").endswith("/sms/send"):  # the SMS gateway's send API (a bearer token)
                    receiver._sms(body)
                    return self._answer(200, {"ok": True})
                ok = verify(receiver.secret, self.headers.get(TIMESTAMP, ""), body, self.headers.get(SIGNATURE, ""))
                if ok and self.path.rstrip("/").endswith("/12345/answers"):
                    receiver._answer_12345(body, self.headers.get(DELIVERY, ""))
                    return self._answer(200, {"ok": True})
                receiver._record(body, ok, self.headers.get(DELIVERY, ""))
                self._answer(200 if ok else 401, {"ok": ok})

            def do_GET(self):
                if self.path.rstrip("/") != "/received":
                    return self._answer(404, {"error": "GET /received"})
                with receiver.lock:
                    self._answer(200, {**receiver.counts, "last": receiver.last})

            def _answer(self, status: int, payload: dict):
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        base = f"http://{host}:{self.server.server_address[1]}"
        self.url = f"{base}/onegrid/notifications"
        self.sms_url, self.hotline_url = f"{base}/sms/send", f"{base}/12345/answers"

    def _sms(self, body: bytes) -> None:
        try:
            doc = json.loads(body)
        except ValueError:
            return
        with self.lock:
            self.counts["sms"] += 1
            self.sms[str(doc.get("to", ""))].append({k: doc.get(k) for k in ("id", "text")})

    def _answer_12345(self, body: bytes, delivery: str) -> None:
        doc = json.loads(body)
        with self.lock:
            kept = self.answers[str(doc.get("ticket_no", ""))]
            if delivery in {a["id"] for a in kept}:  # a retry of one answer: the idempotency key says so
                return
            self.counts["hotline_answers"] += 1
            kept.append(doc)

    def texts_to(self, phone: str) -> list[str]:
        with self.lock:
            return [m["text"] for m in self.sms.get(phone, [])]

    def _record(self, body: bytes, ok: bool, delivery: str) -> None:
        with self.lock:
            self.counts["received"] += 1
            if not ok:
                return
            self.counts["verified"] += 1
            if delivery in self.seen:
                self.counts["duplicates"] += 1
            self.seen.add(delivery)
            try:
                doc = json.loads(body)
            except ValueError:
                return
            kind = doc.get("kind", "?")
            self.counts["by_kind"][kind] = self.counts["by_kind"].get(kind, 0) + 1
            self.last = (self.last + [{k: doc.get(k) for k in ("kind", "case_id", "recipient", "text")}])[-self.keep :]

    def start(self) -> WebhookReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def push_reply(notify_url: str, secret: bytes, message_id: str, phone: str, text: str) -> requests.Response:
    """What the county's SMS gateway does with a reply it received: push it to notify, signed."""
    doc = {"message_id": message_id, "from": phone, "text": text, "received_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    body = json.dumps(doc, ensure_ascii=False).encode()
    ts = str(int(time.time()))
    headers = {"Content-Type": "application/json; charset=utf-8", TIMESTAMP: ts, SIGNATURE: sign(secret, ts, body)}
    return requests.post(f"{notify_url}/notify/sms/replies", data=body, headers=headers, timeout=10)


class SmsCitizens:
    """Simulated citizens who answer the satisfaction SMS by replying to it (sim.actors): the
    question read off the gateway stand-in, the reply pushed back signed, naming the code."""

    def __init__(self, receiver: WebhookReceiver, notify_url: str, secret: bytes):
        self.receiver, self.notify_url, self.secret = receiver, notify_url, secret

    def reply(self, case: dict, action: str) -> str:
        """`matched` (the verdict is recorded), `wait` (the question has not arrived yet), or
        what else became of it (`no_phone`, `unmatched`, `failed`)."""
        phone = str((case.get("reporter") or {}).get("phone") or "")
        if not phone:
            return "no_phone"
        code = case["id"][-4:].upper()  # onegrid.domain.replies.short_code
        if not any("回复 1 满意" in t and code in t for t in self.receiver.texts_to(phone)):
            return "wait"
        text = f"{'1' if action == 'satisfied' else '2'} {code}"
        try:
            r = push_reply(self.notify_url, self.secret, f"sim-{case['id']}-{case.get('reopen_count', 0)}", phone, text)
        except requests.RequestException:
            return "failed"
        return r.json().get("outcome", "failed") if r.ok else "failed"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.notify_receiver", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8290)
    parser.add_argument("--secret-env", default="ONEGRID_WEBHOOK_SECRET")
    args = parser.parse_args(argv)
    secret = os.environ.get(args.secret_env)
    if not secret:
        parser.error(f"set {args.secret_env} to the webhook secret notify signs with")
    receiver = WebhookReceiver(secret.encode(), args.host, args.port)
    try:
        receiver.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
