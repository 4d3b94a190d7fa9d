"""The batch consumer's pure parts (onegrid/adapters/nameko/batch.py, Confirms in the bus):
gathering a batch, when one `multiple` ack may settle it, what a failed batch does, and the
counting of publisher confirms. The broker side is tests/integration/test_batch.py."""

from types import SimpleNamespace

import pytest

from onegrid.adapters.amqp.bus import Confirms, corked
from onegrid.adapters.nameko.batch import BatchSettings, Gathering, after_batch, one_ack_covers


def test_a_batch_is_handed_over_when_full_and_not_before():
    g = Gathering(3)
    assert g.add("a") is None and g.starts_batch()
    assert g.add("b") is None and not g.starts_batch()
    assert g.add("c") == ["a", "b", "c"]
    assert g.pending == [] and g.generation == 1
    assert g.add("d") is None and g.starts_batch()  # the next batch starts with the next message


def test_the_wait_hands_over_what_there_is_but_not_a_batch_that_already_went():
    g = Gathering(2)
    g.add("a")
    first = g.generation
    assert g.add("b") == ["a", "b"]  # full before the wait ran out
    g.add("c")
    assert g.take(first) == []  # the timer of the batch that went: nothing, "c" stays
    assert g.pending == ["c"]
    assert g.take(g.generation) == ["c"]  # the timer of c's batch
    assert g.take() == []  # nothing left


def test_a_batch_of_one_size_is_every_message_alone():
    g = Gathering(1)
    assert g.add("a") == ["a"] and g.add("b") == ["b"]


@pytest.mark.parametrize(
    ("batch", "unsettled", "covers"),
    [
        ([1, 2, 3], {1, 2, 3}, True),
        ([4, 5, 6], {4, 5, 6, 7, 8}, True),  # later deliveries are above the ack: untouched
        ([4, 5, 6], {2, 4, 5, 6}, False),  # 2 still in hand (another batch, a park): not with it
        ([5, 7], {5, 6, 7}, False),  # 6 between them belongs to no one here
        ([], {1}, False),
    ],
)
def test_one_multiple_ack_only_when_it_covers_the_batch_alone(batch, unsettled, covers):
    assert one_ack_covers(batch, unsettled) is covers


def test_a_failed_batch_falls_back_to_one_by_one_and_a_single_message_is_the_reliable_path():
    assert after_batch(10, failed=False) == "ack"
    assert after_batch(10, failed=True) == "one_by_one"
    assert after_batch(1, failed=True) == "reliable"
    assert after_batch(1, failed=False) == "reliable"


def test_batch_settings_from_the_nameko_config():
    assert BatchSettings.of({}) == BatchSettings(50, 5)
    s = BatchSettings.of({"BATCH_SIZE": "20", "BATCH_WAIT_MS": "0"})
    assert (s.size, s.wait_ms, s.prefetch) == (20, 0.0, 40)
    with pytest.raises(ValueError, match="BATCH_SIZE"):
        BatchSettings.of({"BATCH_SIZE": 0})


def test_confirms_count_single_and_multiple_acks():
    c = Confirms(sent=5)
    c.on_ack(2, multiple=True)
    assert not c.done(1, 5)
    c.on_ack(4, multiple=False)
    c.on_ack(3, multiple=False)
    assert c.done(1, 4) and not c.done(1, 5)
    c.on_ack(5, multiple=True)
    assert c.done(1, 5) and c.single == set()


def test_confirms_keep_nacks_and_returns():
    c = Confirms(sent=2)
    c.on_return(Exception("NO_ROUTE"), "onegrid.events", "case.nowhere", None)
    c.on_nack(1, multiple=False)
    c.on_ack(2, multiple=False)
    assert c.done(1, 2) and c.nacked == 1 and c.returned == [("onegrid.events", "case.nowhere")]


def test_kept_writes_wait_for_the_flush_and_the_rest_goes_to_the_store_at_once():
    from onegrid.adapters.redis.kept import KeptReceipts, KeptUses
    from tests.unit.services.fakes import FakeStore, FakeUsage

    store, usage = FakeStore("t"), FakeUsage()
    kept, uses = KeptReceipts(store), KeptUses(usage)
    kept.record_receipt("water", "e-1", {"type": "event.accepted"})
    uses.record_use("water", "water.leak", 1, 10.0)
    uses.record_use("water", "water.leak", 1, 12.0)
    assert store.receipt("water", "e-1") is None and usage.counts == {}
    assert kept.receipt("water", "e-1") is None  # reads go to the store
    kept.flush()
    uses.flush()
    assert store.receipt("water", "e-1") == {"type": "event.accepted"}
    assert usage.counts == {("water", "water.leak", 1): 2} and usage.last[("water", "water.leak", 1)] == 12.0
    kept.flush()  # nothing twice
    uses.flush()
    assert usage.counts == {("water", "water.leak", 1): 2}


def test_corked_sends_a_batch_of_frames_in_one_write_and_nothing_after_an_error():
    writes: list[bytes] = []
    transport = SimpleNamespace(_write=writes.append)
    conn = SimpleNamespace(connection=SimpleNamespace(transport=transport))
    buffer = bytearray(b"ab")
    with corked(conn):
        transport._write(memoryview(buffer))  # py-amqp reuses its buffer for the next frame
        buffer[:] = b"cd"
        transport._write(memoryview(buffer))
        assert writes == []
    assert writes == [b"abcd"] and transport._write == writes.append
    with pytest.raises(RuntimeError), corked(conn):
        transport._write(b"ef")
        raise RuntimeError("a publish failed")
    assert writes == [b"abcd"] and transport._write == writes.append
