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

from onegrid.adapters.amqp import topology
from onegrid.adapters.identity import EmbeddedIssuer
from onegrid.domain.access import COMMUNITY_OFFICER, DEPARTMENT_STAFF, GRID_WORKER, OPERATOR, STREET_OFFICER
from onegrid.kernel.tenant import COMMAND_CENTRE
from onegrid.operator import ops

EVIDENCE = "https://evidence.onegrid.invalid/site-photo.jpg"
RETRY = object()  # what an action returns when it should be tried again


class Badges:
    """People signed in with the county's embedded issuer: each is added (with a role and
    scope) the first time they act, and carries a token from then on."""

    def __init__(self, issuer: EmbeddedIssuer):
        self.issuer = issuer
        self.tokens: dict[str, str] = {}
        self.lock = threading.Lock()

    def headers(self, subject: str, role: str, scope: str = "") -> dict:
        with self.lock:
            if subject not in self.tokens:
                self.issuer.add(subject, role, scope)
                self.tokens[subject] = self.issuer.token(subject)
            return {"Authorization": f"Bearer {self.tokens[subject]}"}

    @classmethod
    def of(cls, tenant) -> Badges:
        """Badges from a county's embedded issuer, as the operator (the admin Redis user)."""
        return cls(EmbeddedIssuer(ops.store(tenant.id).r, tenant))


def offices_of(tenant) -> list[tuple[str, str]]:
    """(unit, role) of each office the simulated people work: the street and community
    offices by their officers, the top by the command centre's operator."""
    role = {"street": STREET_OFFICER, "community": COMMUNITY_OFFICER}
    out = [(n.code, role[n.level]) for n in tenant.nodes.values() if n.level in role]
    return [*out, (tenant.root, OPERATOR)]


class Actors:
    def __init__(
        self,
        uri: str,
        departments_url: str,
        supervision_url: str,
        departments,
        badges: Badges,
        seed: int = 11,
        sms=None,  # sim.notify_receiver.SmsCitizens: citizens reply to the satisfaction SMS
        offices: list[tuple[str, str]] | None = None,
    ):
        self.uri, self.dep, self.sup, self.departments = uri, departments_url, supervision_url, list(departments)
        self.badges = badges
        self.rng = random.Random(seed)
        self.jobs: list = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(24)
        self.done = Counter()
        self.seen: set[str] = set()
        self.silent: set[str] = set()
        self.sms = sms
        self.waits: Counter = Counter()  # a citizen waiting for the satisfaction SMS, by case
        # (unit, role) of each office that works its escalation items (street, community, the root)
        self.offices = list(offices or [])

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

    def start(self) -> Actors:
        for target in (self._clock, self._departments, self._grid_workers_and_citizens, self._offices):
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
        if self.rng.random() < 0.04 and wo["department"] != COMMAND_CENTRE:
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
            self.later(
                max(0.05, resolve_at - time.monotonic()),
                self._act,
                wo,
                "resolve",
                {"note": "已现场处置", "evidence_urls": [EVIDENCE]},
            )
        return outcome

    def _act(self, wo: dict, action: str, body: dict):
        url = f"{self.dep}/departments/{wo['department']}/work-orders/{wo['id']}/{action}"
        who = f"{wo['department']}-duty"  # the department's staff on duty, signed in as themselves
        r = requests.post(url, json=body, headers=self._as(who, DEPARTMENT_STAFF, wo["department"]), timeout=10)
        self.done[f"{action}:{'ok' if r.ok else r.status_code}"] += 1
        return r.ok or (RETRY if r.status_code >= 500 else False)

    def _as(self, subject: str, role: str, scope: str = "") -> dict:
        """The Authorization header of a person (every people-facing route takes one)."""
        return self.badges.headers(subject, role, scope)

    # -- the offices up the ladder ---------------------------------------------------------
    def _offices(self) -> None:
        """Each office reads its escalation items; most acknowledge within their deadline and
        then take the case over, some let it pass up."""
        while not self.stop.is_set() and self.offices:
            for unit, role in self.offices:
                scope = "" if role == OPERATOR else unit
                try:
                    page = requests.get(
                        f"{self.sup}/escalations",
                        params={"unit": unit, "limit": 200},
                        headers=self._as(f"office-{unit}", role, scope),
                        timeout=10,
                    ).json()
                except (requests.RequestException, ValueError):
                    continue
                for item in page.get("items", []):
                    if item.get("status") == "open" and item["id"] not in self.seen:
                        self.seen.add(item["id"])
                        if self.rng.random() < 0.85:  # else it misses its deadline: the case goes up
                            self.later(self.rng.uniform(0.05, 0.5), self._office, item, unit, role, "acknowledge")
            self.stop.wait(0.5)

    def _office(self, item: dict, unit: str, role: str, decision: str):
        scope = "" if role == OPERATOR else unit
        body = {"note": "本级已签收" if decision == "acknowledge" else "本级接管，督促限时办结"}
        r = requests.post(
            f"{self.sup}/escalations/{item['id']}/{decision}",
            json=body,
            headers=self._as(f"office-{unit}", role, scope),
            timeout=10,
        )
        self.done[f"office_{decision}:{'ok' if r.ok else r.status_code}"] += 1
        if r.ok and decision == "acknowledge":
            self.later(self.rng.uniform(0.1, 0.8), self._office, item, unit, role, "take_over")
        return r.ok or (RETRY if r.status_code >= 500 else False)

    # -- grid workers and citizens -------------------------------------------------------
    def _grid_workers_and_citizens(self) -> None:
        while not self.stop.is_set():
            for status, handle in (
                ("dispatched", self._arrive),
                ("resolved", self._verify),
                ("verified", self._answer),
            ):
                try:
                    page = requests.get(
                        f"{self.sup}/cases",
                        params={"status": status, "limit": 500},
                        headers=self._as("operator-1", OPERATOR),
                        timeout=10,
                    ).json()
                except requests.RequestException:
                    continue
                for case in page.get("cases", []):
                    key = f"{status}:{case['id']}:{case.get('reopen_count', 0)}"
                    # a listing reads the index, then the cases: one may have moved on between
                    if case.get("status") == status and key not in self.seen:
                        self.seen.add(key)
                        handle(case)
            self.stop.wait(0.3)

    def _arrive(self, case: dict) -> None:
        """The grid worker goes on site and checks in where the report was (most at once)."""
        if case.get("arrived_at"):
            return
        loc = case.get("location") or {}
        spot = {"lat": loc.get("lat", 34.75), "lon": loc.get("lon", 113.6), "note": "已到达现场"}
        self.later(self.rng.uniform(0.0, 0.3), self._check_in, case, spot)

    def _check_in(self, case: dict, spot: dict):
        who = self._as(f"gw-{case['grid']}", GRID_WORKER, case["grid"])
        r = requests.post(f"{self.sup}/cases/{case['id']}/check-in", json=spot, headers=who, timeout=10)
        self.done[f"check_in:{'ok' if r.ok else r.status_code}"] += 1
        return r.ok or (RETRY if r.status_code >= 500 else False)

    def _verify(self, case: dict) -> None:
        # a sampled on-site closure is found not fixed more often than a department's work
        action = (
            "verify_failed" if self.rng.random() < (0.2 if case.get("resolution") == "on_site" else 0.03) else "verify"
        )
        body = {
            "evidence_urls": [EVIDENCE],
            "note": "现场复核未整改到位" if action == "verify_failed" else "现场复核",
        }
        self.later(self.rng.uniform(0.1, 0.5), self._case, case, action, body)

    def _answer(self, case: dict) -> None:
        r = self.rng.random()
        if r < 0.07:
            self.silent.add(case["id"])  # never answers: the feedback window closes it
            return
        action = "not_satisfied" if r < 0.15 else "satisfied"
        note = "问题仍未解决" if action == "not_satisfied" else "满意"
        self.later(self.rng.uniform(0.1, 1.0), self._case, case, action, {"note": note})

    def _case(self, case: dict, action: str, body: dict):
        # the grid worker of the case's grid verifies on site; the citizen's word comes in by
        # a reply to the satisfaction SMS, or (no phone, or the reply went astray) through the
        # 12345 hotline, recorded by a command-centre operator
        verifying = action.startswith("verify")
        if not verifying and self.sms is not None:
            said = self.sms.reply(case, action)
            if said == "matched":
                self.done[f"{action}:sms"] += 1
                return True
            self.waits[case["id"]] += said == "wait"
            if said == "wait" and self.waits[case["id"]] < 4:
                return RETRY
        who = (
            self._as(f"gw-{case['grid']}", GRID_WORKER, case["grid"]) if verifying else self._as("hotline-1", OPERATOR)
        )
        r = requests.post(f"{self.sup}/cases/{case['id']}/{action}", json=body, headers=who, timeout=10)
        self.done[f"{action}:{'ok' if r.ok else r.status_code}"] += 1
        return r.ok or (RETRY if r.status_code >= 500 else False)
