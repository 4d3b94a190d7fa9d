"""A county's Redis fails over under load: a private primary, its replica and three Sentinels
(Debian's redis-sentinel); intake and routing follow the Sentinels. Events are published at a
steady rate, the primary is SIGKILLed mid-stream, the Sentinels promote the replica, the old
primary comes back as its replica, and every published event must end as exactly one case, a
merge or a quarantine entry: none lost, none twice."""

import threading
import time
from collections import Counter

import pytest
import redis

from sim.accounting import gather
from sim.reconcile import reconcile
from tests.conftest import County
from tests.support import wait_until

pytestmark = pytest.mark.integration

EVENTS, RATE = 400, 25.0  # 16 s of steady load; the primary dies 5 s in


@pytest.fixture
def sentinels(sentinel_set, monkeypatch):
    # a case-making write is acknowledged only once the replica has it (see docs/deploy.md)
    monkeypatch.setenv("REDIS_WAIT_REPLICAS", "1")
    monkeypatch.setenv("REDIS_WAIT_MS", "1000")
    # the production backoff (36 s in all) outlasts a failover; the tests' 100,300 ms do not
    monkeypatch.setenv("RETRY_DELAYS_MS", "1000,5000,30000")
    return sentinel_set


def test_no_acknowledged_case_is_lost_across_a_redis_failover_under_load(tmp_path, sentinels):
    county = County(tmp_path, services=("intake", "routing"), env={"ONEGRID_TIME_SCALE": "1"})
    try:
        county.services.start()
        sim = county.simulator(seed=12)
        planned = sim.plan(EVENTS, bad_every=50, duplicate_every=40)
        publisher = threading.Thread(target=sim.publish, args=(planned,), kwargs={"rate": RATE})
        publisher.start()
        time.sleep(5)
        old = sentinels.kill_primary()
        killed_at = time.monotonic()
        new = sentinels.await_failover(old)
        promoted_in = time.monotonic() - killed_at
        sentinels.rejoin(old)
        publisher.join()

        def settled():
            s = county.store.stats()
            return s.get("cases_dispatched", 0) + s.get("merged", 0) + s.get("quarantined", 0) >= len(planned)

        wait_until(settled, timeout=90, what="every event processed after the failover")
        case_of, reason_of = gather(county.store, planned)
        rec = reconcile(planned, case_of, reason_of)
        twice = {e: n for e, n in Counter(c["event_id"] for c in case_of.values()).items() if n > 1}
        stats = county.store.stats()
        print(
            f"failover {old} -> {new} in {promoted_in:.1f}s (primary now {sentinels.primary_port()}); "
            f"{len(planned)} published, "
            f"{stats.get('cases', 0)} cases, {stats.get('merged', 0)} merged, {stats.get('quarantined', 0)} quarantined"
        )
        assert new != old  # a second failover back, on a loaded machine, is a whole set too
        assert rec.problems == []
        assert twice == {}
        assert stats.get("cases", 0) == len(case_of)
        assert rec.cases_found + sum(rec.quarantine_found.values()) == len(planned)
    finally:
        county.close()


def test_the_replica_barrier_covers_every_earlier_write_and_refuses_without_a_replica(sentinels):
    """What a reliable consumer does before it acks (onegrid/adapters/nameko/reliable.py):
    writes made on other connections are on the replica once the barrier returns; with the
    replica gone it raises NotReplicated, so the message is retried, not acked."""
    from onegrid.adapters.redis import connect
    from onegrid.adapters.redis.store import NotReplicated, replicas_caught_up

    primary = connect.client(sentinels.env()["REDIS_URL"])
    for i in range(50):  # the pool's connections, not the barrier's
        primary.set(f"og:{{barrier-test}}:k{i}", i)
    replicas_caught_up(primary, "barrier-test", 1, 1000)
    replica_port = next(p for p in sentinels.data_ports if p != sentinels.primary_port())
    replica = redis.Redis(port=replica_port)
    assert [int(v) for v in replica.mget([f"og:{{barrier-test}}:k{i}" for i in range(50)])] == list(range(50))
    replica.shutdown(nosave=True)
    with pytest.raises(NotReplicated):
        replicas_caught_up(primary, "barrier-test", 1, 300)
