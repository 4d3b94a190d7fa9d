"""The channels a notification goes out on: a signed webhook, e-mail over SMTP, and an SMS
gateway over HTTP. Each `send` returns or raises DeliveryError (permanent: retrying cannot
help, e.g. the receiver refused the request as malformed).

Webhook signature: HMAC-SHA256 with the shared secret over `<timestamp>.<body>` (the
timestamp is the X-OneGrid-Timestamp header, unix seconds; the body the exact bytes), sent as
`X-OneGrid-Signature: sha256=<hex>`. `verify` is what a receiver runs (docs/notify.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
from email.message import EmailMessage
from typing import Protocol

import requests

from onegrid.kernel import settings

TIMESTAMP, SIGNATURE, DELIVERY = "X-OneGrid-Timestamp", "X-OneGrid-Signature", "X-OneGrid-Delivery"


class DeliveryError(Exception):
    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason[:500]
        self.permanent = permanent


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(
    secret: bytes, timestamp: str, body: bytes, signature: str, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """True when `signature` is ours for this body and the timestamp is recent (replays of an
    old request are refused)."""
    try:
        fresh = abs((now if now is not None else time.time()) - int(timestamp)) <= tolerance_s
    except (TypeError, ValueError):
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def _http_outcome(response: requests.Response, what: str) -> None:
    if 200 <= response.status_code < 300:
        return
    permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 409, 425, 429)
    raise DeliveryError(f"{what} answered HTTP {response.status_code}: {response.text[:200]}", permanent)


def _post(session: requests.Session, url: str, body: bytes, headers: dict, timeout: float, what: str) -> None:
    try:
        response = session.post(url, data=body, headers=headers, timeout=timeout)
    except requests.Timeout:
        raise DeliveryError(f"{what} timed out after {timeout:g}s") from None
    except requests.RequestException as exc:
        raise DeliveryError(f"{what} unreachable: {type(exc).__name__}") from None
    _http_outcome(response, what)


def _session() -> requests.Session:
    """One keep-alive pool per channel, as wide as delivery's concurrency may go (requests'
    default of 10 discards a connection each time more deliveries run at once)."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Webhook:
    def __init__(self, url: str, secret: bytes, timeout_s: float = 5):
        self.url, self.secret, self.timeout = url, secret, float(timeout_s)
        self.session = _session()

    def send(self, n: dict) -> None:
        body = json.dumps(
            {
                k: n[k]
                for k in ("id", "tenant", "kind", "case_id", "event_id", "event_type", "subject", "text", "created_at")
            }
            | {"recipient": n["recipient"]},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        self.post_signed(body, n["id"], f"webhook {self.url}")

    def post_signed(self, body: bytes, delivery: str, what: str) -> None:
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP: ts,
            SIGNATURE: sign(self.secret, ts, body),
            DELIVERY: delivery,
        }
        _post(self.session, self.url, body, headers, self.timeout, what)


class Hotline(Webhook):
    """Answers to the 12345 system: POST JSON {id, tenant, ticket_no, step, case_id, event_id,
    event_type, text, outcome, satisfied, created_at}, signed as the webhook is; `id` (also
    X-OneGrid-Delivery) is the idempotency key."""

    FIELDS = ("id", "tenant", "ticket_no", "step", "case_id", "event_id", "event_type", "text", "outcome")

    def send(self, n: dict) -> None:
        doc = {k: n.get(k, "") for k in self.FIELDS}
        doc["satisfied"] = {"true": True, "false": False}.get(n.get("satisfied", ""))
        doc["created_at"] = n.get("created_at", "")
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        self.post_signed(body, n["id"], f"12345 system {self.url}")


class Email:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        timeout_s: float = 10,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
    ):
        self.host, self.port, self.sender, self.timeout = host, int(port), sender, float(timeout_s)
        self.starttls, self.username, self.password = starttls, username, password

    def send(self, n: dict) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, n["address"], n["subject"]
        msg["Message-ID"] = f"<{n['id']}@onegrid>"
        msg.set_content(n["text"])
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP refused the recipient: {exc.recipients}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:300], permanent=500 <= exc.smtp_code < 600
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port} failed: {type(exc).__name__}: {exc}") from None


class Sms:
    """An SMS gateway over HTTP: POST JSON {account, to, text, id} with a bearer token."""

    def __init__(self, url: str, account: str = "", token: str = "", timeout_s: float = 5):
        self.url, self.account, self.token, self.timeout = url, account, token, float(timeout_s)
        self.session = _session()

    def send(self, n: dict) -> None:
        body = json.dumps(
            {"account": self.account, "to": n["address"], "text": n["text"], "id": n["id"]}, ensure_ascii=False
        ).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
        }
        _post(self.session, self.url, body, headers, self.timeout, f"SMS gateway {self.url}")


class Channel(Protocol):
    def send(self, n: dict) -> None: ...


def _signed(kind: type[Webhook], ch: dict, override: str, what: str) -> Webhook:
    """A channel that POSTs signed JSON (the webhook, the 12345 answers): it never sends
    unsigned, so a missing secret stops the service from starting."""
    secret = settings.secret(ch["secret_env"])
    if not secret:
        raise RuntimeError(f"notify: {what}: environment variable {ch['secret_env']} is not set")
    return kind(settings.notify_override(override) or ch["url"], secret.encode(), ch.get("timeout_s", 5))


def build(channels: dict) -> dict[str, Channel]:
    """The enabled channels from the manifest's settings; secrets come from the environment
    variables the settings name (settings.secret), and a deployment may override endpoints
    (settings.notify_override). A webhook without its secret refuses to start."""
    out: dict[str, Channel] = {}
    if "webhook" in channels:
        out["webhook"] = _signed(Webhook, channels["webhook"], "WEBHOOK_URL", "webhook secret")
    if "hotline" in channels:
        out["hotline"] = _signed(Hotline, channels["hotline"], "HOTLINE_URL", "12345 answers")
    if "email" in channels:
        ch = channels["email"]
        out["email"] = Email(
            settings.notify_override("SMTP_HOST") or ch["host"],
            int(settings.notify_override("SMTP_PORT") or ch["port"]),
            ch["sender"],
            ch.get("timeout_s", 10),
            bool(ch.get("starttls")),
            settings.secret(ch["username_env"]) if ch.get("username_env") else None,
            settings.secret(ch["password_env"]) if ch.get("password_env") else None,
        )
    if "sms" in channels:
        ch = channels["sms"]
        out["sms"] = Sms(
            settings.notify_override("SMS_URL") or ch["url"],
            ch.get("account", ""),
            (settings.secret(ch["token_env"]) or "") if ch.get("token_env") else "",
            ch.get("timeout_s", 5),
        )
    return out
