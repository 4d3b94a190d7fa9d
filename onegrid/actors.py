"""The people around the platform, simulated for the demo: department systems working their
queues, grid workers verifying on site, citizens answering. They use only what real ones
would: the department's AMQP work queue and the departments and supervision HTTP APIs.

Delays are fractions of each work order's own deadlines (already compressed by
ONEGRID_TIME_SCALE), so most parts are on time and some are late enough to be escalated.
"""
from __future__ import annotations

import heapq
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from amqp.exceptions import AMQPError
from kombu import Connection
from kombu.exceptions import KombuError

from onegrid.adapters import topology

EVIDENCE = "https://evidence.onegrid.invalid/site-photo.jpg"
RETRY = object()  # what an action returns when it should be tried again


class Actors:
    def __init__(self, uri: str, departments_url: str, supervision_url: str, departments, seed: int = 11):
        self.uri, self.dep, self.sup, self.departments = uri, departments_url, supervision_url, list(departments)
        self.rng = random.Random(seed)
        self.jobs: list = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(24)
        self.done = Counter()
        self.seen: set[str] = set()
        self.silent: set[str] = set()

    # -- scheduling ----------------------------------------------------------------------
    def later(self, delay: float, fn, *args, attempt: int = 1) -> None:
        with self.lock:
            heapq.heappush(self.jobs, (time.monotonic() + delay, id(args), fn, args, attempt))

    def _clock(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                due = []
                while self.jobs and self.jobs[0][0] <= time.monotonic():
                    due.append(heapq.heappop(self.jobs))
            for _, _, fn, args, attempt in due:
                self.pool.submit(self._safe, fn, args, attempt)
            time.sleep(0.02)

    def _safe(self, fn, args: tuple, attempt: int) -> None:
        """Run one action; a system that could not reach the platform (or got a 5xx) tries
        again a little later, as a real one's outbox would."""
        try:
            if fn(*args) is not RETRY:
                return
        except requests.RequestException as exc:
            self.done[f"error:{type(exc).__name__}"] += 1
        if attempt < 5 and not self.stop.is_set():
            self.later(attempt, fn, *args, attempt=attempt + 1)

    def start(self) -> "Actors":
        for target in (self._clock, self._departments, self._grid_workers_and_citizens):
            threading.Thread(target=target, daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- department systems --------------------------------------------------------------
    def _departments(self) -> None:
        while not self.stop.is_set():  # a department system reconnects when the broker drops it
            try:
                self._consume()
            except (OSError, AMQPError, KombuError) as exc:
                self.done[f"reconnect:{type(exc).__name__}"] += 1
                self.stop.wait(1.0)

    def _consume(self) -> None:
        with Connection(self.uri) as conn:
            def on_message(message):
                self._plan(json.loads(message.body))
                message.ack()
            queues = [topology.work_queue(d) for d in self.departments]
            with conn.Consumer(queues, on_message=on_message, prefetch_count=100):
                while not self.stop.is_set():
                    try:
                        conn.drain_events(timeout=0.5)
                    except TimeoutError:
                        pass

    def _plan(self, wo: dict) -> None:
        """Accept and resolve within the deadlines left (most), or miss them by a little."""
        now = time.time()
        ack_left, res_left = float(wo["ack_due"]) - now, float(wo["resolve_due"]) - now
        if self.rng.random() < 0.04 and wo["department"] != "governance":
            self.later(max(0.0, ack_left * 0.3), self._act, wo, "return", {"note": "不属于本部门职责"})
            return
        if self.rng.random() < 0.10:  # late to report for duty: the case climbs a rung
            accept_at = ack_left + min(self.rng.uniform(0.2, 1.5) * float(wo["ack_span"]), 3.0)
        else:
            accept_at = max(0.0, ack_left) * self.rng.uniform(0.05, 0.6)
        if self.rng.random() < 0.06:  # resolved after the deadline
            resolve_at = res_left + min(self.rng.uniform(0.05, 0.3) * float(wo["resolve_span"]), 5.0)
        else:
            resolve_at = max(0.0, res_left) * self.rng.uniform(0.05, 0.25)
        self.later(accept_at, self._accept, wo, time.monotonic() + max(accept_at + 0.05, resolve_at))

    def _accept(self, wo: dict, resolve_at: float):
        """Resolve only once the acceptance has gone through (never overtake it)."""
        outcome = self._act(wo, "accept", {})
        if outcome is True:
            self.later(max(0.05, resolve_at - time.monotonic()), self._act, wo, "resolve",
                       {"note": "已现场处置", "evidence_urls": [EVIDENCE]})
        return outcome

    def _act(self, wo: dict, action: str, body: dict):
        url = f"{self.dep}/departments/{wo['department']}/work-orders/{wo['id']}/{action}"
        r = requests.post(url, json={"actor": f"{wo['department']}-duty", **body}, timeout=10)
        self.done[f"{action}:{'ok' if r.ok else r.status_code}"] += 1
        return r.ok or (RETRY if r.status_code >= 500 else False)

    # -- grid workers and citizens -------------------------------------------------------
    def _grid_workers_and_citizens(self) -> None:
        while not self.stop.is_set():
            for status, handle in (("resolved", self._verify), ("verified", self._answer)):
                try:
                    page = requests.get(f"{self.sup}/cases", params={"status": status, "limit": 500}, timeout=10).json()
                except requests.RequestException:
                    continue
                for case in page.get("cases", []):
                    key = f"{status}:{case['id']}:{case.get('reopen_count', 0)}"
                    # a listing reads the index, then the cases: one may have moved on between
                    if case.get("status") == status and key not in self.seen:
                        self.seen.add(key)
                        handle(case)
            self.stop.wait(0.3)

    def _verify(self, case: dict) -> None:
        action = "verify_failed" if self.rng.random() < 0.03 else "verify"
        body = {"actor": f"grid-worker-{case['grid'][-7:]}", "evidence_urls": [EVIDENCE],
                "note": "现场复核未整改到位" if action == "verify_failed" else "现场复核"}
        self.later(self.rng.uniform(0.1, 0.5), self._case, case, action, body)

    def _answer(self, case: dict) -> None:
        r = self.rng.random()
        if r < 0.07:
            self.silent.add(case["id"])  # never answers: the feedback window closes it
            return
        action = "not_satisfied" if r < 0.15 else "satisfied"
        note = "问题仍未解决" if action == "not_satisfied" else "满意"
        self.later(self.rng.uniform(0.1, 1.0), self._case, case, action, {"actor": "citizen", "note": note})

    def _case(self, case: dict, action: str, body: dict):
        r = requests.post(f"{self.sup}/cases/{case['id']}/{action}", json=body, timeout=10)
        self.done[f"{action}:{'ok' if r.ok else r.status_code}"] += 1
        return r.ok or (RETRY if r.status_code >= 500 else False)
