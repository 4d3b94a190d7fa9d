"""A local webhook receiver that checks OneGrid's signature: what the demo points notify at,
and a working example of verifying it (docs/notify.md).

    python -m onegrid.notify_receiver --port 8290    # secret from ONEGRID_WEBHOOK_SECRET

`POST` anything: answered 200 when the signature is valid, 401 when not. `GET /received`:
{received, verified, duplicates, by_kind, last}. In-process: `WebhookReceiver(secret).start()`.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from onegrid.adapters.notify_channels import DELIVERY, SIGNATURE, TIMESTAMP, verify


class WebhookReceiver:
    def __init__(self, secret: bytes, host: str = "127.0.0.1", port: int = 0, keep: int = 20):
        self.secret, self.keep = secret, keep
        self.lock = threading.Lock()
        self.counts = {"received": 0, "verified": 0, "duplicates": 0, "by_kind": {}}
        self.last: list[dict] = []
        self.seen: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = verify(receiver.secret, self.headers.get(TIMESTAMP, ""), body, self.headers.get(SIGNATURE, ""))
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
        self.url = f"http://{host}:{self.server.server_address[1]}/onegrid/notifications"

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
            self.last = (self.last + [{k: doc.get(k) for k in ("kind", "case_id", "recipient", "text")}])[-self.keep:]

    def start(self) -> "WebhookReceiver":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onegrid.notify_receiver", description=__doc__.split("\n")[0])
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
