"""The seed counties on the real bus: Jifeng's manhole whistle replayed (sim/jifeng.py, the
`onegrid scenario jifeng` command) reaches the six bodies, each with its own work order on its
own queue, acknowledged and resolved, and the case closes fixed."""

import pytest

from onegrid.adapters.identity import EmbeddedIssuer
from sim import jifeng
from sim.actors import Badges
from tests.conftest import County

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def zone(tmp_path_factory):
    c = County(
        tmp_path_factory.mktemp("jifeng"),
        services=("intake", "routing", "departments", "supervision"),
        base="jifeng",
    )
    c.services.start()
    yield c
    c.close()


def test_the_manhole_whistle_reaches_six_bodies_and_closes(zone):
    urls = {n: zone.services.url(n) for n in ("supervision", "departments")}
    badges = Badges(EmbeddedIssuer(zone.store.r, zone.tenant))
    result = jifeng.replay(zone.tenant, zone.uri, zone.store, urls, badges)
    # six work orders, one per body, each read from the body's own queue on the bus
    orders = zone.store.work_orders_of(result.case_id)
    assert sorted(o["department"] for o in orders) == sorted(d for d, _, _ in jifeng.BODIES)
    assert [r.department for r in result.rows] == [d for d, _, _ in jifeng.BODIES]
    assert all(r.on_queue for r in result.rows), [r.body for r in result.rows if not r.on_queue]
    # each reported for duty (accepted) and resolved with what it did
    for o in orders:
        assert o["status"] == "resolved" and o["accepted_at"] and o["resolved_at"]
        assert o["note"] == dict((d, did) for d, _, did in jifeng.BODIES)[o["department"]]
    # the street whistled the zone's platform: the case ended at county level, closed fixed
    case = result.case
    assert (case["status"], case["outcome"], case["level"]) == ("closed", "fixed", "county")
    assert case["category"] == "public_facilities" and case["grid"] == jifeng.GRID
    steps = result.steps
    assert steps.count("accept") == 6 and "verify" in steps and steps[-1] in ("close", "satisfied")
    whistles = [s for s in zone.store.timeline(result.case_id) if s["action"] == "whistle"]
    assert len(whistles) == 1 and whistles[0]["actor"] == f"street-{jifeng.STREET}"
