"""A county running for real on this machine: onboarded fresh, every service as a `nameko run`
process, notifications landing on a local signature-checking webhook receiver, and the
simulated departments, grid workers and citizens at work. The demo, the year replay and the
chaos run drive one of these and read what it did."""

from __future__ import annotations

import secrets

from onegrid.adapters.identity import EmbeddedIssuer
from onegrid.cli.ui import console
from onegrid.domain.lifecycle import OPEN_CASE
from onegrid.operator import ops
from sim.actors import Actors, Badges, offices_of
from sim.notify_receiver import SmsCitizens, WebhookReceiver
from sim.runner import ServiceSet


class LiveCounty:
    def __init__(self, tenant, env: dict | None = None, services=None, log_dir="run", actors: bool = True):
        self.tenant, self.uri = tenant, ops.uri(tenant.id)
        self.secret = secrets.token_hex(16)
        self.inbound = secrets.token_hex(16)  # what the SMS gateway (the receiver) signs replies with
        self.receiver = WebhookReceiver(self.secret.encode())
        receiver_env = {
            "ONEGRID_WEBHOOK_SECRET": self.secret,
            "ONEGRID_SMS_INBOUND_SECRET": self.inbound,
            "NOTIFY_WEBHOOK_URL": self.receiver.url,
            "NOTIFY_SMS_URL": self.receiver.sms_url,
            "NOTIFY_HOTLINE_URL": self.receiver.hotline_url,
        }
        self.services = ServiceSet(
            tenant.id,
            self.uri,
            log_dir=log_dir,
            env={**receiver_env, **(env or {})},
            **({"services": services} if services else {}),
        )
        self.with_actors = actors
        self.actors: Actors | None = None
        self.store = ops.store(tenant.id)
        self.badges = Badges(EmbeddedIssuer(self.store.r, tenant))  # its people, signed in

    def start(self) -> LiveCounty:
        result = ops.onboard(self.tenant, reset=True)
        console.print(f"onboarded: vhost [bold]{self.tenant.id}[/], {len(result['queues'])} queues")
        self.receiver.start()
        try:
            with console.status(f"starting {', '.join(self.services.names)}"):
                self.services.start()
            console.print(f"services up: {', '.join(f'{n} {self.services.url(n)}' for n in self.services.names)}")
            if self.with_actors:
                self.actors = Actors(
                    self.uri,
                    self.services.url("departments"),
                    self.services.url("supervision"),
                    self.tenant.departments,
                    badges=self.badges,
                    sms=SmsCitizens(self.receiver, self.services.url("notify"), self.inbound.encode())
                    if "notify" in self.services.names
                    else None,
                    offices=offices_of(self.tenant),
                ).start()
        except BaseException:
            self.close()
            raise
        return self

    def open_cases(self) -> int:
        pipe = self.store.r.pipeline()
        for status in OPEN_CASE:
            pipe.zcard(self.store.key("idx", "status", status))
        return sum(pipe.execute())

    def close(self) -> None:
        if self.actors:
            self.actors.close()
        self.receiver.close()
        with console.status("stopping services"):
            self.services.stop()
        console.print("services stopped")

    def __enter__(self) -> LiveCounty:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
