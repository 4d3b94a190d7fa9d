"""The broker's memory alarm blocks publishers: HTTP intake answers 503 with Retry-After (in
the time it allows, then at once) instead of hanging; a department's AMQP publish waits; once
the alarm clears, what waited arrives and what was refused is sent again, and every event is
one case dispatched once. On a private RabbitMQ node (bench.rabbit_private): the alarm blocks
every publisher of a node, and the shared broker's belong to everyone else's runs."""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests

from bench.rabbit_private import PrivateRabbit, available
from onegrid.domain.cases import case_id
from services.intake.service import HTTP_PUBLISH_TIMEOUT
from tests.conftest import County
from tests.support import publish, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="needs Debian's rabbitmq-server for a private node"),
]


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    rabbit = PrivateRabbit(tmp_path_factory.mktemp("rabbit")).start()
    saved = {k: os.environ.get(k) for k in rabbit.env()}
    os.environ.update(rabbit.env())  # onboarding and the services: the private node
    c = County(tmp_path_factory.mktemp("alarm"), services=("intake", "routing"), env=rabbit.env())
    try:
        c.services.start()
        c.rabbit = rabbit
        yield c
    finally:
        rabbit.memory_alarm(False)
        c.close()
        rabbit.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _post(county, p) -> requests.Response:
    headers = {**p.headers, "Content-Type": "application/json"}
    return requests.post(county.services.url("intake") + "/events", data=p.body, headers=headers, timeout=30)


def _cid(p) -> str:
    return case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")


def test_a_memory_alarm_answers_503_then_nothing_is_lost_or_doubled(county):
    sim = county.simulator(seed=71)
    before, timed_out, refused, waited = sim.good(), sim.good(), sim.good(), sim.good()
    assert _post(county, before).status_code == 201
    county.rabbit.memory_alarm(True)
    amqp_done = threading.Event()
    try:
        wait_until(county.rabbit.alarmed, timeout=10, what="the memory alarm")
        started = time.monotonic()
        first = _post(county, timed_out)
        took = time.monotonic() - started
        assert first.status_code == 503, first.text
        assert first.json()["error"] == "bus_blocked" and int(first.headers["Retry-After"]) >= 1
        assert took < HTTP_PUBLISH_TIMEOUT + 3, f"answered after {took:.1f}s"
        started = time.monotonic()
        second = _post(county, refused)  # the bus is known blocked: answered at once
        assert second.status_code == 503 and time.monotonic() - started < 1.5
        # a department's own publish (publisher confirms) waits while the alarm holds
        threading.Thread(target=lambda: (publish(county.uri, [waited]), amqp_done.set()), daemon=True).start()
        assert not amqp_done.wait(3), "an AMQP publish was confirmed during the memory alarm"
    finally:
        county.rabbit.memory_alarm(False)
    assert amqp_done.wait(30), "the waiting AMQP publish was not confirmed after the alarm cleared"
    for p in (timed_out, refused):  # what the sender does with a 503: send again after Retry-After
        again = wait_until(lambda p=p: (r := _post(county, p)).status_code in (200, 201) and r, what="a retry")
        assert again.json()["case_id"] == _cid(p)
    for p in (before, timed_out, refused, waited):
        cid = _cid(p)
        wait_until(lambda cid=cid: (c := county.store.case(cid)) and c["status"] == "dispatched", what=f"{cid}")
    time.sleep(1)  # a late copy of an announcement (sent before the 503, delivered after) is processed by now
    for p in (before, timed_out, refused, waited):
        orders = county.store.work_orders_of(_cid(p))
        departments = [o["department"] for o in orders]
        assert orders and len(departments) == len(set(departments)), f"{_cid(p)} dispatched twice: {departments}"
    assert county.store.stats().get("cases", 0) == 4
