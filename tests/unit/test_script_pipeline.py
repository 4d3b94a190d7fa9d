"""store.run_each: a script run once per call in one pipeline of EVALSHAs with one WAIT, a
script the server lost loaded and the calls it refused run again (no Redis: a double of the
client that answers the way Redis does)."""

from __future__ import annotations

import pytest
from redis.exceptions import NoScriptError, ResponseError

from onegrid.adapters.redis.store import NotReplicated, run_each


class FakeScript:
    def __init__(self):
        self.script, self.sha = "return 1", "old-sha"


class FakeRedis:
    """Knows the scripts in `known`; each pipeline's execute is one round trip."""

    def __init__(self, known: set[str], acked: int = 1, fail: set[str] | None = None):
        self.known, self.acked, self.fail = known, acked, fail or set()
        self.round_trips: list[list[tuple]] = []
        self.loaded = 0

    def pipeline(self, transaction: bool = True):
        assert transaction is False  # the calls are not one transaction: each script is all-or-nothing
        return FakePipeline(self)

    def script_load(self, script: str) -> bytes:
        self.loaded += 1
        self.known.add("new-sha")
        return b"new-sha"


class FakePipeline:
    def __init__(self, client: FakeRedis):
        self.client, self.stack = client, []

    def evalsha(self, sha, numkeys, *keys_and_args):
        self.stack.append(("EVALSHA", sha, *keys_and_args))

    def execute_command(self, *args):
        self.stack.append(args)

    def execute(self, raise_on_error: bool = True):
        assert raise_on_error is False
        self.client.round_trips.append(self.stack)
        replies: list[object] = []
        for command in self.stack:
            if command[0] == "WAIT":
                replies.append(self.client.acked)
            elif command[1] not in self.client.known:
                replies.append(NoScriptError("NOSCRIPT No matching script"))
            elif command[2] in self.client.fail:
                replies.append(ResponseError("ERR script failed"))
            else:
                replies.append([1, command[2]])
        return replies


CALLS = [(["k1"], ["a"]), (["k2"], ["b"]), (["k3"], ["c"])]


def test_every_call_in_one_round_trip_with_one_wait():
    client = FakeRedis({"old-sha"})
    assert run_each(client, FakeScript(), CALLS, (1, 100)) == [[1, "k1"], [1, "k2"], [1, "k3"]]
    [trip] = client.round_trips
    assert [c[0] for c in trip] == ["EVALSHA"] * 3 + ["WAIT"] and trip[-1] == ("WAIT", 1, 100)


def test_no_wait_when_no_replica_is_asked_for_and_nothing_sent_for_no_calls():
    client = FakeRedis({"old-sha"})
    run_each(client, FakeScript(), CALLS, (0, 0))
    assert [c[0] for c in client.round_trips[0]] == ["EVALSHA"] * 3
    assert run_each(client, FakeScript(), [], (1, 100)) == [] and len(client.round_trips) == 1


def test_a_script_the_server_lost_is_loaded_and_the_refused_calls_run_again_in_order():
    client, script = FakeRedis(set()), FakeScript()
    assert run_each(client, script, CALLS, (1, 100)) == [[1, "k1"], [1, "k2"], [1, "k3"]]
    assert client.loaded == 1 and script.sha == "new-sha"
    first, again = client.round_trips
    assert [c[2] for c in again if c[0] == "EVALSHA"] == ["k1", "k2", "k3"] and again[-1][0] == "WAIT"


def test_too_few_replicas_is_not_replicated():
    with pytest.raises(NotReplicated, match="0 of 1"):
        run_each(FakeRedis({"old-sha"}, acked=0), FakeScript(), CALLS, (1, 100))


def test_a_failing_call_fails_the_whole_call_after_the_round_trip():
    client = FakeRedis({"old-sha"}, fail={"k2"})
    with pytest.raises(ResponseError, match="script failed"):
        run_each(client, FakeScript(), CALLS, (0, 0))
    assert len(client.round_trips) == 1
