"""Pure helpers of the benchmarks and of ServiceSet (no broker; its stop is tried on plain child processes)."""

import os

import pytest

from bench.cpu import cpu_seconds, rss_bytes
from bench.memory import family
from bench.run import md_table, run_json
from bench.scaling import busiest, by_service
from bench.stats import Run
from onegrid.catalogue import SERVICES
from sim.runner import ServiceSet, port_of, port_span, replica_name, service_of

P = "og:{zhongyuan-qinling}:"


@pytest.mark.parametrize(
    "key, fam",
    [
        (P + "case:c-0123456789abcdef", "case:*"),
        (P + "case:c-0123456789abcdef:timeline", "case:*:timeline"),
        (P + "case:c-0123456789abcdef:work_orders", "case:*:work_orders"),
        (P + "wo:w-0123456789abcdef-governance", "wo:*"),
        (P + "event:0123456789abcdef0123456789abcdef", "event:*"),
        (P + "idx:status:dispatched", "idx:status:*"),
        (P + "idx:level:grid", "idx:level:*"),
        (P + "idx:grid:410102-001-002-003", "idx:grid:*"),
        (P + "idx:department:public_security", "idx:department:*"),
        (P + "department:health:queue", "department:*:queue"),
        (P + "recent:work_safety", "recent:*"),
        (P + "timers", "timers"),
        (P + "timers:inflight:due", "timers:inflight:due"),
        (P + "outbox:due", "outbox:due"),
        (P + "quarantine:seen:abc123", "quarantine:seen:*"),
        (P + "stats", "stats"),
    ],
)
def test_key_family(key, fam):
    assert family(key, P) == fam


def test_replica_names_round_trip():
    assert replica_name("intake", 1) == "intake" and replica_name("intake", 3) == "intake-3"
    assert service_of("intake") == ("intake", 1) and service_of("intake-2") == ("intake", 2)
    for bad in ("intake-1", "intake-x", "nope-2", "nope"):
        with pytest.raises(KeyError):
            service_of(bad)


def test_ports_of_replicas_are_distinct_and_within_the_span():
    replicas = {"intake": 3, "routing": 2}
    span = port_span(replicas)
    ports = [port_of(9000, s, r) for s in SERVICES for r in (1, 2, 3)]
    assert len(set(ports)) == len(ports) and all(9000 < p <= 9000 + span for p in ports)
    assert port_of(9000, "intake") == 9001 and port_of(9000, "routing") == 9002  # the first replicas as ever
    assert port_span(None) == 1 + len(SERVICES)


def test_service_set_instances_and_urls():
    s = ServiceSet("t-one", "amqp://x/t-one", port_base=9000, services=("intake", "routing"), replicas={"intake": 2})
    assert s.names == ["intake", "routing"] and s.instances == ["intake", "intake-2", "routing"]
    second = f"http://127.0.0.1:{9001 + len(SERVICES)}"  # after one instance of every service
    assert s.url("intake") == "http://127.0.0.1:9001" and s.url("intake-2") == second
    with pytest.raises(ValueError):
        ServiceSet("t-one", "amqp://x/t-one", services=("intake",), replicas={"routing": 2})
    with pytest.raises(ValueError):
        ServiceSet("t-one", "amqp://x/t-one", services=("intake",), replicas={"intake": 0})


def test_run_json_and_markdown_table():
    r = Run(
        "end to end, 400/s offered", 4, started=1.0, published=2.0, finished=3.0, latencies=[0.01, 0.02, 0.03, 0.04]
    )
    out = run_json(r)
    assert out["offered_per_second"] == 400.0 and out["per_second"] == 2.0 and out["p50_ms"] == pytest.approx(30.0)
    assert run_json(Run("end to end, saturated", 1))["offered_per_second"] is None
    assert md_table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_busiest_service_from_cpu():
    rows = [{"tenants": 1, "process_cpu_percent": {"t/intake": 25.0, "t/routing": 40.0}}]
    assert busiest(rows) == "routing"
    assert busiest([]) == "intake"
    assert by_service({"a/intake": 10.0, "b/intake": 5.0, "a/intake-2": 1.0}) == {"intake": 15.0, "intake-2": 1.0}


def test_own_process_figures():
    assert cpu_seconds(os.getpid()) > 0 and rss_bytes(os.getpid()) > 1 << 20
    assert cpu_seconds(2**22 + 7) == 0.0  # no such process


def test_free_port_base_is_below_the_ephemeral_range_and_free():
    import socket

    from sim.runner import _ephemeral_low, free_port_base

    base = free_port_base(20)
    assert base >= 10_000 and base + 20 < _ephemeral_low()
    for port in range(base + 1, base + 21):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_profile_charges_each_sample_to_its_innermost_known_activity():
    from bench.profile import WAITING, summarise

    lib, app = "/venv/lib/python3.11/site-packages", "/work/main"  # py-spy names files by their full path
    collapsed = "\n".join(
        [
            f"<module> ({lib}/nameko/cli/run.py:1);handle ({app}/services/intake/service.py:80);"
            f"register ({app}/onegrid/adapters/store.py:40);execute_command ({lib}/redis/client.py:500) 7",
            f"<module> ({lib}/nameko/cli/run.py:1);handle ({app}/services/intake/service.py:80);"
            f"admit ({app}/onegrid/domain/intake.py:30) 3",
            f"<module> ({lib}/nameko/cli/run.py:1);run ({lib}/eventlet/hubs/hub.py:340);"
            f"wait ({lib}/eventlet/hubs/poll.py:80) 10",
            f"handle ({app}/services/routing/service.py:50);load ({lib}/marshmallow/schema.py:700);"
            f"loads (/usr/lib/python3.11/json/decoder.py:10) 2",
        ]
    )
    assert summarise(collapsed) == {
        "Redis (scripts, transactions, socket I/O)": 7,
        "OneGrid's own code": 3,
        WAITING: 10,
        "JSON encode/decode": 2,
    }


def test_history_cost_help_says_how_to_run_it_and_runs_nothing(capsys):
    from bench.history_cost import main

    assert main(["--help"]) == 0
    assert "BENCH_DRAIN=0 .venv/bin/python -m bench.history_cost" in capsys.readouterr().out


def test_service_set_stop_kills_what_ignores_sigterm_and_names_it():
    """A process that ignores SIGTERM is killed after the timeout and named; one that obeys is not;
    `only` leaves the rest running (real child processes, no broker)."""
    import subprocess
    import sys

    from bench.chaos import stop_all_but_scoring

    obeys = [sys.executable, "-c", "import time; time.sleep(60)"]
    ignores = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)",
    ]
    s = ServiceSet("t-one", "amqp://x/t-one", services=("intake", "open311", "scoring"))
    s.procs = {
        "intake": subprocess.Popen(obeys),
        "open311": subprocess.Popen(ignores, stdout=subprocess.PIPE),
        "scoring": subprocess.Popen(obeys),
    }
    s.procs["open311"].stdout.readline()  # its SIGTERM handler is in place
    log: list = []
    stop_all_but_scoring(s, log, timeout=1)
    try:
        assert s.procs["intake"].returncode == -15
        assert s.procs["open311"].returncode == -9
        assert s.procs["scoring"].poll() is None
        assert log[0][0] == "stop services (SIGTERM)"
        assert log[0][2] == "FAILED: open311 still running 1s after SIGTERM: killed"
    finally:
        assert s.stop(timeout=5) == []


def test_chaos_help_says_how_to_run_it_and_runs_nothing(capsys):
    from bench.chaos import main

    assert main(["--help"]) == 0
    assert "CHAOS_EVENTS=1200 .venv/bin/python -m bench.chaos" in capsys.readouterr().out
