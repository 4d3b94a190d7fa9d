"""The registry service's use cases: a county's contracts as a schema registry.

Reads: the event types and their versions, one version as JSON Schema, the county's AsyncAPI
document, how each version is used. Checks without touching the bus: an event judged exactly
as intake judges it (onegrid.domain.intake.admit), a proposed version's compatibility findings.
Changes, by a tenant admin: a new contract version or a new tenant manifest is checked by the
same loader every service starts with (onegrid.app.registry) on top of what is published, stored
(PublishedStore: Redis, never overwritten) and announced as `registry.changed` on the county's
bus, on which the services reload; retiring a version is refused while a department uses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from marshmallow import ValidationError

from onegrid.app import whatif
from onegrid.app.history import Window
from onegrid.app.ports import Clock, HistoryReader, PublishedStore, Publisher
from onegrid.app.registry import load
from onegrid.contracts import Overlay, Registry, asyncapi, compat, release
from onegrid.contracts.fields import check_fields
from onegrid.contracts.registry import DEPARTMENT_ID, EVENT_TYPE, manifest_doc
from onegrid.domain.calendar import WEEKENDS_ONLY, WorkCalendar
from onegrid.domain.intake import Accepted, RawEvent, admit
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.versions import DAY, RECENT_USE_DAYS, retire_refusal
from onegrid.kernel import envelope as ce
from onegrid.kernel.tenant import Tenant

CHANGED = "registry.changed"  # the event the services reload on (topology.CONSUMED)
ENTRY_KEYS = {"version", "summary", "category", "fields", "compatibility"}  # a published version's body


@dataclass(frozen=True)
class Change:
    """What a publish or a retirement did: the new revision, or `unchanged`."""

    outcome: str  # published | unchanged | retired
    revision: int
    detail: dict

    def as_dict(self) -> dict:
        return {"outcome": self.outcome, "revision": self.revision, **self.detail}


def split_key(key: str) -> tuple[str, str]:
    """`<department>.<type>` as its parts; LookupError (404) when it cannot name an event type."""
    department, _, etype = key.partition(".")
    if not DEPARTMENT_ID.match(department) or not EVENT_TYPE.match(etype):
        raise LookupError(f"no event type {key[:100]!r}: a key is <department>.<type>")
    return department, etype


@dataclass
class ContractRegistry:
    tenant_id: str
    root: str | Path  # the image's contracts: the embedded default under what is published
    registry: Registry  # as loaded now, with what is published
    published: PublishedStore
    bus: Publisher
    clock: Clock
    calendar: WorkCalendar = WEEKENDS_ONLY  # working days for the what-if; the service passes the Chinese one

    @property
    def tenant(self):
        return self.registry.tenants[self.tenant_id]

    # -- reads ---------------------------------------------------------------------------
    def contracts(self) -> dict:
        """Every event type of the county's enabled departments with its versions."""
        lock = release.read(self.root)
        released = set(lock.versions) if lock else set()
        by_key: dict[str, dict] = {}
        for (key, version), c in sorted(self.registry.events.items()):
            if c.department not in self.tenant.departments:
                continue
            item = by_key.setdefault(
                key, {"key": key, "department": c.department, "type": c.type, "versions": [], "retired": []}
            )
            item["versions"].append({"version": version, "summary": c.summary, "released": (key, version) in released})
        for key, version in sorted(self.registry.retired):
            if key in by_key:
                by_key[key]["retired"].append(version)
        return {"tenant": self.tenant_id, "contracts": list(by_key.values())}

    def _contract(self, key: str, version: int):
        department, _ = split_key(key)
        if department not in self.tenant.departments:
            raise LookupError(f"no department {department!r} in {self.tenant_id}")
        contract = self.registry.events.get((key, version))
        if contract is None:
            retired = (key, version) in self.registry.retired
            known = self.registry.versions(key)
            raise LookupError(f"{key} has no version {version}{' (retired)' if retired else ''}; known: {known}")
        return contract

    def version(self, key: str, version: int) -> dict:
        """One version: its definition and its data as a JSON Schema (the AsyncAPI payload's)."""
        c = self._contract(key, version)
        schema = {"$schema": "http://json-schema.org/draft-07/schema#", **asyncapi.object_schema(c.fields)}
        return {
            "key": key,
            "version": version,
            "summary": c.summary,
            "category": c.category,
            "compatibility": c.compatibility,
            "dataschema": ce.dataschema(key, version),
            "fields": c.own_fields,
            "schema": schema,
        }

    def manifest(self) -> dict:
        return manifest_doc(self.root, self.tenant_id, self.published.overlay())

    def usage(self, key: str) -> dict:
        department, _ = split_key(key)
        known = self.registry.versions(key) or [v for k, v in self.registry.retired if k == key]
        if department not in self.tenant.departments or not known:
            raise LookupError(f"no event type {key!r} in {self.tenant_id}")
        uses = [u.as_dict() for u in self.published.uses() if u.key == key]
        return {"key": key, "recent_use_days": RECENT_USE_DAYS, "uses": uses}

    # -- checks --------------------------------------------------------------------------
    def validate(self, raw: RawEvent, department: str | None) -> dict:
        """The event judged as intake would judge it, nothing recorded or published. A person
        (`department` None) checks the content: who sent it is not judged."""
        tenant = self.tenant if department else replace(self.tenant, trust_unauthenticated_http=True)
        verdict = admit(raw, tenant, self.registry, department)
        if isinstance(verdict, Accepted):
            return {
                "outcome": "valid",
                "type": verdict.envelope.type,
                "version": verdict.version,
                "category": verdict.category,
                "grid": verdict.grid,
            }
        return {"outcome": "invalid", "reason": verdict.reason, "detail": verdict.detail}

    def compatibility(self, key: str, body: dict) -> dict:
        """A proposed version's findings against the versions before it, in its mode (the
        contract's unless the proposal names one); `compatible` when there are none."""
        department, _ = split_key(key)
        versions = self.registry.versions(key)
        if department not in self.tenant.departments or not versions:
            raise LookupError(f"no event type {key!r} in {self.tenant_id}: a proposal is a new version of one")
        entry = _entry(body)
        version = entry.get("version", max(versions, default=0) + 1)
        mode = entry.get("compatibility") or self._mode(key)
        earlier = [v for v in versions if v < version]
        against = [] if mode == "NONE" or not earlier else earlier if compat.transitive(mode) else earlier[-1:]
        findings = []
        for old in against:
            for direction, text, f in compat.findings(
                self.registry.events[(key, old)].own_fields, entry["fields"], mode
            ):
                findings.append({"direction": direction, "path": f.path, "rule": f.rule, "text": text, "against": old})
        return {
            "key": key,
            "version": version,
            "mode": mode,
            "against": against,
            "compatible": not findings,
            "findings": findings,
        }

    def _mode(self, key: str) -> str:
        versions = self.registry.versions(key)
        if versions:
            return self.registry.events[(key, versions[-1])].compatibility
        return compat.DEFAULT

    # -- changes -------------------------------------------------------------------------
    def publish_version(self, key: str, body: dict, actor: str) -> Change:
        """A new version of `key`, the next after every one the county knows (retired ones too)."""
        department, etype = split_key(key)
        if department not in self.tenant.departments:
            raise LookupError(f"no department {department!r} in {self.tenant_id}")
        entry = _entry(body)
        if body.get("type", etype) != etype:
            raise ValidationError({"type": [f"the path names {key}: its type is {etype!r}"]})
        known = sorted({v for k, v in (*self.registry.events, *self.registry.retired) if k == key})
        if not known:
            raise LookupError(f"no event type {key!r}: a registry publishes new versions of existing event types")
        version = entry.setdefault("version", known[-1] + 1)
        if version in known:
            before = self.published.published_version(key, version)
            same = before is not None and release.canonical_json(before) == release.canonical_json(
                {"type": etype, **entry}
            )
            if same:
                return Change("unchanged", self.published.revision(), {"key": key, "version": version})
            raise TransitionRefused(f"{key} v{version} is published and immutable: publish version {known[-1] + 1}")
        if version != known[-1] + 1:
            raise ValidationError({"version": [f"the next version of {key} is {known[-1] + 1}"]})
        stored = {"type": etype, **entry}
        current = self.published.overlay()
        self._check(replace(current, events=_with(current, department, stored)))
        created, revision = self.published.add_version(department, key, version, stored)
        if not created:  # another publish of this version got there first
            raise TransitionRefused(f"{key} v{version} was published meanwhile: read it and publish the next")
        self._announce(revision, "version", actor, key=key, version=version)
        return Change("published", revision, {"key": key, "version": version})

    def publish_manifest(self, doc: dict, actor: str) -> Change:
        """The county's manifest, replacing the image's (the tenant id cannot change)."""
        self.proposed_manifest(doc)
        revision = self.published.put_manifest(doc)
        self._announce(revision, "manifest", actor)
        return Change("published", revision, {"tenant": self.tenant_id})

    def proposed_manifest(self, doc: dict) -> Tenant:
        """`doc` as the county's manifest on top of what is published, checked by the services'
        loader: ValidationError (400) with every problem, or the county it would make."""
        if doc.get("tenant") != self.tenant_id:
            raise ValidationError({"tenant": [f"this registry publishes {self.tenant_id!r}'s manifest only"]})
        return self._check(replace(self.published.overlay(), manifests={self.tenant_id: doc})).tenants[self.tenant_id]

    def whatif_manifest(self, doc: dict, history: HistoryReader, days: float) -> whatif.ManifestWhatIf:
        """The last `days` of the county's history through the current and the proposed manifest
        (onegrid.app.whatif.manifest, as `onegrid whatif manifest` runs it); nothing changes."""
        proposed = self.proposed_manifest(doc)
        now = self.clock.now()
        return whatif.manifest(history, self.tenant, proposed, Window(since=now - days * DAY), now, self.calendar)

    def retire(self, key: str, version: int, actor: str) -> Change:
        """Stop accepting `key` v`version` in this county; refused while a department uses it,
        and for the only version left. Idempotent: a retired version again is `unchanged`."""
        if (key, version) in self.registry.retired:
            return Change("unchanged", self.published.revision(), {"key": key, "version": version})
        self._contract(key, version)
        refusal = retire_refusal(self.published.uses(), key, version, self.clock.now())
        if refusal:
            raise TransitionRefused(refusal)
        if self.registry.versions(key) == [version]:
            raise TransitionRefused(f"{key} v{version} is its only version: an event type keeps one")
        retired, revision = self.published.retire(key, version)
        if retired:
            self._announce(revision, "retired", actor, key=key, version=version)
        return Change("retired" if retired else "unchanged", revision, {"key": key, "version": version})

    def _check(self, overlay: Overlay) -> Registry:
        """ValidationError (400) with every problem the services' loader finds with `overlay`."""
        registry, problems = load(self.root, overlay)
        if problems:
            raise ValidationError({"problems": [f"{p.path}: {p.reason}" for p in problems]})
        return registry

    def _announce(self, revision: int, what: str, actor: str, **detail) -> None:
        env = ce.new(
            tenant=self.tenant_id,
            department="registry",
            type=CHANGED,
            source=f"/{self.tenant_id}/registry",
            subject=str(revision),
            id=f"registry-{revision}",
        )
        # not mandatory: the revision in the store is the truth, a service also compares it
        self.bus.publish(env, {"revision": revision, "change": what, "actor": actor, **detail}, mandatory=False)


def _entry(body: dict) -> dict:
    """A proposed version's entry, checked as a contract file's entry would be."""
    unknown = set(body) - ENTRY_KEYS - {"type"}
    if unknown:
        raise ValidationError({k: ["unknown field"] for k in sorted(unknown)})
    entry = {k: v for k, v in body.items() if k in ENTRY_KEYS}
    problems: dict[str, list[str]] = {}
    version = entry.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        problems["version"] = ["an integer >= 1"]
    if not isinstance(entry.get("summary"), str) or not entry["summary"].strip():
        problems["summary"] = ["required: what the event reports"]
    fields = entry.get("fields")
    if not isinstance(fields, dict):
        problems["fields"] = ["required: a map of field name to field spec"]
    else:
        for path, reason in check_fields(fields, "fields"):
            problems.setdefault(path, []).append(reason)
    mode = entry.get("compatibility")
    if mode is not None and mode not in compat.MODES:
        problems["compatibility"] = [f"one of {', '.join(compat.MODES)}"]
    if problems:
        raise ValidationError(problems)
    return json.loads(json.dumps(entry))  # plain JSON values only, as stored


def _with(overlay: Overlay, department: str, entry: dict) -> dict[str, tuple[dict, ...]]:
    return {**overlay.events, department: (*overlay.events.get(department, ()), entry)}
