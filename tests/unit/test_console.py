"""The command-centre page's decisions and use cases, through fakes of the ports: which trays a
person has and what is in them (their part of the county only), which actions a case offers
whom in which state, what counts as a photo, the map's grids, the words in both languages,
and the session's CSRF token."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from onegrid.adapters.web import i18n
from onegrid.adapters.web import session as web
from onegrid.adapters.web.evidence import LocalEvidence
from onegrid.app.console import SHOWN, Console, grid_features
from onegrid.domain import console as dc
from onegrid.domain.access import Principal

from .helpers import QINLING, registry

TENANT = registry().tenants[QINLING]
GRIDS = sorted(g.code for g in TENANT.grids())
STREET = TENANT.ancestor(GRIDS[0], "street").code
COMMUNITY = TENANT.ancestor(GRIDS[0], "community").code
OTHER_COMMUNITY_GRID = next(g for g in GRIDS if TENANT.ancestor(g, "community").code != COMMUNITY)
OPERATOR = Principal("op", "operator")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 40


def _case(n: int, grid: str, status: str = "dispatched", level: str = "grid", overdue: int = 0, depts=("health",)):
    return {
        "id": f"c-{n:016x}",
        "grid": grid,
        "status": status,
        "level": level,
        "overdue": overdue,
        "category": "work_safety",
        "at": 1_700_000_000 + n,
        "work_orders": [{"department": d, "status": "dispatched"} for d in depts],
    }


class FakeCases:
    """The CaseReader port over a list, filtering as the store's indexes do."""

    def __init__(self, cases: list[dict], whistled: set[str] = frozenset()):
        self.cases, self.whistled = cases, whistled

    def case(self, case_id):
        return next((c for c in self.cases if c["id"] == case_id), None)

    def work_orders_of(self, case_id):
        return (self.case(case_id) or {}).get("work_orders", [])

    def timeline(self, case_id):
        return [{"action": "whistle"}] if case_id in self.whistled else [{"action": "register"}]

    def query(self, status=None, department=None, grid=None, level=None, overdue=False, limit=50, **_):
        out = [
            c
            for c in self.cases
            if (status is None or c["status"] == status)
            and (grid is None or c["grid"] == grid)
            and (level is None or c["level"] == level)
            and (not overdue or c["overdue"])
            and (department is None or department in [w["department"] for w in c["work_orders"]])
        ]
        out.sort(key=lambda c: -c["at"])
        return len(out), out[:limit]


class FakeCentre:
    """supervision's RPCs the page calls: the duplicates desk's list, and what was asked."""

    def __init__(self, suggestions: list[dict] = ()):
        self.suggestions, self.calls = list(suggestions), []

    def list_duplicates(self, offset=0, limit=50):
        return {"total": len(self.suggestions), "suggestions": self.suggestions[offset : offset + limit]}

    def attach_evidence(self, case_id, actor, evidence, note=""):
        self.calls.append(("attach_evidence", case_id, actor, evidence, note))
        return {}

    def confirm_duplicate(self, case_id, actor, note=""):
        self.calls.append(("confirm_duplicate", case_id, actor, note))
        return {}

    def dismiss_duplicate(self, case_id, actor, note=""):
        self.calls.append(("dismiss_duplicate", case_id, actor, note))
        return {}

    def unmerge(self, case_id, actor, note=""):
        self.calls.append(("unmerge", case_id, actor, note))
        return {}


class FakeBook:
    """The duplicates book's one read the page makes: a case's suggestion."""

    def __init__(self, suggestions: dict = None):
        self.found = suggestions or {}

    def suggestion(self, case_id):
        return self.found.get(case_id)


def _console(cases, whistled=frozenset(), suggestions=(), book=None, centre=None):
    centre = centre or FakeCentre(suggestions)
    return Console(TENANT, FakeCases(cases, set(whistled)), centre, book or FakeBook())


def _trays(who, cases, whistled=frozenset(), suggestions=()):
    return {t.name: t for t in _console(cases, whistled, suggestions).inbox(who)}


def _suggestion(n: int, grid: str, primary_grid: str | None = None, distance=9.0) -> dict:
    """A row of supervision's list_duplicates: case n may duplicate case n + 100."""
    brief = lambda m, g: {"id": f"c-{m:016x}", "grid": g, "status": "dispatched", "summary": f"report {m}"}  # noqa: E731
    match = {"confidence": 0.55, "text": 0.8, "place": 0.5, "time": 0.9, "distance_m": distance, "same_grid": True}
    return {
        "case_id": f"c-{n:016x}",
        "primary_id": f"c-{n + 100:016x}",
        "status": "open",
        "at": "2026-12-04T08:00:00+00:00",
        "match": match,
        "case": brief(n, grid),
        "primary": brief(n + 100, primary_grid or grid),
    }


def test_the_operator_sees_every_tray_county_wide_with_counts():
    cases = [
        _case(1, GRIDS[0], overdue=1),
        _case(2, OTHER_COMMUNITY_GRID, overdue=1, level="county"),
        _case(3, GRIDS[1], status="resolved"),
        _case(4, GRIDS[2], status="merged"),
        _case(5, GRIDS[3], status="in_progress"),
        _case(6, GRIDS[4], status="closed", level="county"),  # closed: no longer on anyone's desk
    ]
    suggestions = [_suggestion(7, GRIDS[0]), _suggestion(8, OTHER_COMMUNITY_GRID, distance=None)]
    trays = _trays(OPERATOR, cases, whistled={"c-0000000000000005"}, suggestions=suggestions)
    assert [t for t in trays] == list(dc.TRAYS)
    assert trays["overdue"].count == 2 and trays["my_level"].count == 1
    assert [c["id"] for c in trays["whistled"].cases] == ["c-0000000000000005"]
    assert trays["to_verify"].count == 1 and trays["duplicates"].count == 1
    assert trays["suggested"].count == 2
    row = trays["suggested"].cases[0]
    assert (row["id"], row["primary_id"], row["summary"], row["primary_summary"]) == (
        "c-0000000000000007",
        "c-000000000000006b",
        "report 7",
        "report 107",
    )
    assert (row["distance_m"], row["confidence"]) == (9.0, 0.55)
    assert trays["suggested"].cases[1]["distance_m"] is None  # one of the two had no location


def test_the_street_officers_level_tray_carries_the_item_their_office_owes():
    item = {"id": "e-0000000000000001-street", "unit": STREET, "level": "street", "status": "open", "due": 1.0}
    passed = {**item, "id": "e-0000000000000001-community", "unit": COMMUNITY, "status": "passed_up"}
    at_street = {**_case(1, GRIDS[0], level="street"), "escalations": [passed, item]}
    other = _case(2, GRIDS[1], level="street")  # at the street by routing: no item
    trays = _trays(Principal("st", "street_officer", STREET), [at_street, other])
    rows = {c["id"]: c for c in trays["my_level"].cases}
    assert rows["c-0000000000000001"]["item"] == item and rows["c-0000000000000002"]["item"] is None
    # the community's officer works at the community: the street's cases are not in their tray
    assert _trays(Principal("co", "community_officer", COMMUNITY), [at_street])["my_level"].count == 0


@pytest.mark.parametrize(
    ("who", "has"),
    [
        (OPERATOR, True),
        (Principal("su", "supervisor"), True),
        (Principal("au", "auditor"), True),
        (Principal("ta", "tenant_admin"), True),
        (Principal("st", "street_officer", STREET), False),
        (Principal("co", "community_officer", COMMUNITY), False),
        (Principal("gw", "grid_worker", GRIDS[0]), False),
        (Principal("ds", "department_staff", "health"), False),
    ],
)
def test_the_suggestions_tray_is_for_the_roles_that_may_list_duplicates(who, has):
    """The policy's `duplicates.list` decides who has the tray; its rows are the person's part."""
    assert (dc.SUGGESTED in dc.trays_of(who)) == has
    assert (dc.SUGGESTED in _trays(who, [], suggestions=[_suggestion(7, GRIDS[0])])) == has


def test_a_suggestion_is_seen_only_when_both_cases_are_in_the_persons_part(monkeypatch):
    """Were a scoped role let list duplicates in its subtree, a pair reaching outside it stays hidden."""
    from onegrid.domain import access

    wider = {**access.RULES["duplicates.list"], "community_officer": "place"}
    monkeypatch.setitem(access.RULES, "duplicates.list", wider)
    who = Principal("co", "community_officer", COMMUNITY)
    inside, reaching_out = _suggestion(7, GRIDS[0]), _suggestion(8, GRIDS[0], primary_grid=OTHER_COMMUNITY_GRID)
    tray = _trays(who, [], suggestions=[inside, reaching_out])["suggested"]
    assert [c["id"] for c in tray.cases] == ["c-0000000000000007"] and tray.count == 1


def test_a_community_officer_sees_only_their_subtree():
    who = Principal("co", "community_officer", COMMUNITY)
    cases = [_case(1, GRIDS[0], overdue=1, level="community"), _case(2, OTHER_COMMUNITY_GRID, overdue=1)]
    trays = _trays(who, cases)
    assert [c["id"] for c in trays["overdue"].cases] == ["c-0000000000000001"]
    assert trays["my_level"].count == 1


def test_department_staff_see_their_departments_cases_and_no_level_tray():
    who = Principal("ds", "department_staff", "water")
    cases = [_case(1, GRIDS[0], overdue=1, depts=("water",)), _case(2, GRIDS[1], overdue=1, depts=("health",))]
    trays = _trays(who, cases)
    assert list(trays) == ["overdue", "whistled"]
    assert [c["id"] for c in trays["overdue"].cases] == ["c-0000000000000001"]


def test_a_tray_lists_the_first_but_counts_all():
    cases = [_case(n, GRIDS[n % len(GRIDS)], overdue=1) for n in range(SHOWN + 5)]
    tray = _trays(OPERATOR, cases)["overdue"]
    assert tray.count == SHOWN + 5 and len(tray.cases) == SHOWN


@pytest.mark.parametrize(
    ("who", "status", "level", "expected"),
    [
        (OPERATOR, "dispatched", "street", {"whistle", "take_over", "close_not_fixed", "reject", "evidence"}),
        (OPERATOR, "resolved", "county", {"verify", "verify_failed", "close_not_fixed", "evidence"}),
        (
            Principal("gw", "grid_worker", GRIDS[0]),
            "resolved",
            "grid",
            {"verify", "verify_failed", "close_not_fixed", "evidence"},
        ),
        (
            Principal("st", "street_officer", STREET),
            "dispatched",
            "street",
            {"whistle", "close_not_fixed", "reject", "evidence"},
        ),
        (Principal("au", "auditor"), "dispatched", "grid", set()),  # reads, never acts
        (Principal("ds", "department_staff", "health"), "dispatched", "grid", set()),  # works orders elsewhere
        (OPERATOR, "closed", "county", set()),
    ],
)
def test_actions_follow_the_policy_and_the_state(who, status, level, expected):
    case = _case(1, GRIDS[0], status=status, level=level)
    assert set(dc.actions_for(TENANT, who, case)) == expected


@pytest.mark.parametrize(
    ("who", "status", "suggestion", "expected"),
    [
        (OPERATOR, "dispatched", "open", {"confirm_duplicate", "dismiss_duplicate"}),
        (OPERATOR, "dispatched", "dismissed", set()),  # decided: nothing left to decide
        (OPERATOR, "dispatched", None, set()),
        (OPERATOR, "merged", "confirmed", {"unmerge"}),
        (OPERATOR, "merged", None, {"unmerge"}),  # merged by routing on its own
        (OPERATOR, "closed", "open", set()),
        (Principal("su", "supervisor"), "dispatched", "open", set()),  # sees the suggestion, decides nothing
        (Principal("st", "street_officer", STREET), "merged", None, set()),
        (Principal("gw", "grid_worker", GRIDS[0]), "dispatched", "open", set()),
    ],
)
def test_duplicate_decisions_are_the_operators_on_a_suggested_or_merged_case(who, status, suggestion, expected):
    case = _case(1, GRIDS[0], status=status)
    case["duplicate"] = {"status": suggestion, "primary_id": "c-0000000000000002"} if suggestion else None
    dup = {"confirm_duplicate", "dismiss_duplicate", "unmerge"}
    assert set(dc.actions_for(TENANT, who, case)) & dup == expected
    shown = dc.shows_suggestion(TENANT, who, case)
    assert shown == (suggestion == "open" and who.role in ("operator", "supervisor"))


def test_a_case_carries_its_suggestion_and_a_decision_goes_to_supervision_as_the_person():
    from onegrid.domain.duplicates import Match, Suggestion

    case, primary = _case(1, GRIDS[0]), {**_case(2, GRIDS[0]), "summary": "烧烤店占道"}
    match = Match(case["id"], primary["id"], 0.55, 0.8, 0.5, 0.9, None, True)
    book = FakeBook({case["id"]: Suggestion(case["id"], primary["id"], match, "2026-12-04T08:00:00+00:00")})
    centre = FakeCentre()
    console = _console([case, primary], book=book, centre=centre)
    shown = console.case(case["id"])["duplicate"]
    assert (shown["status"], shown["primary_id"], shown["primary_summary"]) == ("open", primary["id"], "烧烤店占道")
    assert console.case(primary["id"])["duplicate"] is None
    for decision in ("confirm", "dismiss", "unmerge"):
        console.decide_duplicate(OPERATOR, case["id"], decision, "同一处")
    assert [c[0] for c in centre.calls] == ["confirm_duplicate", "dismiss_duplicate", "unmerge"]
    assert all(c[1:] == (case["id"], "op", "同一处") for c in centre.calls)
    with pytest.raises(LookupError, match="unknown decision"):
        console.decide_duplicate(OPERATOR, case["id"], "maybe", "")


def test_an_extension_request_offers_the_decision_to_the_operator_only():
    case = _case(1, GRIDS[0], status="in_progress")
    case["work_orders"][0]["status"] = "extension_requested"
    assert "extension" in dc.actions_for(TENANT, OPERATOR, case)
    assert "extension" not in dc.actions_for(TENANT, Principal("st", "street_officer", STREET), case)


def test_a_photo_is_judged_by_its_bytes():
    png = dc.check_photo(PNG, "image/png")
    assert (png.content_type, png.extension, png.sha256) == ("image/png", "png", hashlib.sha256(PNG).hexdigest())
    assert dc.check_photo(JPEG, "").extension == "jpg"
    assert dc.check_photo(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp").content_type == "image/webp"
    with pytest.raises(dc.NotAPhoto, match="first bytes"):
        dc.check_photo(b"<svg onload=alert(1)>", "image/png")
    with pytest.raises(dc.NotAPhoto, match="says image/png but its bytes are image/jpeg"):
        dc.check_photo(JPEG, "image/png")
    with pytest.raises(dc.NotAPhoto, match="empty"):
        dc.check_photo(b"")
    with pytest.raises(dc.NotAPhoto, match="at most"):
        dc.check_photo(PNG + b"\x00" * dc.MAX_PHOTO_BYTES)
    with pytest.raises(dc.NotAPhoto):
        dc.check_photo(b"RIFF\x00\x00\x00\x00WAVEfmt ")  # a RIFF that is sound, not a WebP


def test_an_attached_photo_is_kept_and_put_on_the_timeline_with_its_sha256(tmp_path):
    centre = FakeCentre()
    store = LocalEvidence(tmp_path)
    case = _case(1, GRIDS[0])
    evidence = _console([case], centre=centre).attach_photo(store, OPERATOR, case["id"], PNG, "", "现场")
    digest = hashlib.sha256(PNG).hexdigest()
    assert evidence["sha256"] == digest and evidence["url"] == f"file:{QINLING}/{case['id']}/{digest}.png"
    assert centre.calls == [("attach_evidence", case["id"], "op", evidence, "现场")]
    assert store.get(f"{QINLING}/{case['id']}/{digest}.png") == (PNG, "image/png")
    with pytest.raises(LookupError):
        store.get("../../etc/passwd")


@pytest.mark.parametrize("drawn", [True, False], ids=["boundaries", "lattice"])
def test_every_grid_is_drawn_once_as_closed_polygons(drawn):
    """From the county's boundaries where it has them (the manifest's geography), else a lattice."""
    tenant = TENANT if drawn else dataclasses.replace(TENANT, geography=None)
    assert (tenant.geography is not None) == drawn
    fc = grid_features(tenant)
    assert sorted(f["id"] for f in fc["features"]) == GRIDS
    assert fc["crs_stated"] == (TENANT.geography.crs if drawn else "lattice")
    for f in fc["features"]:
        geometry = f["geometry"]
        polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
        for ring in (poly[0] for poly in polygons):
            assert ring[0] == ring[-1] and len(ring) >= 4
            assert all(73 < lon < 136 and 3 < lat < 54 for lon, lat in ring)  # in China, lon/lat order


def test_every_word_is_in_both_languages_and_chinese_is_the_default():
    assert all(set(v) == set(i18n.LANGS) and all(v.values()) for v in i18n.WORDS.values())
    assert i18n.lang_of(None, None) == "zh"  # whatever the wall screen's browser is set to
    assert i18n.lang_of("en", "zh") == "en" and i18n.lang_of("xx", "en") == "en"
    for table in (i18n.STATUS, i18n.LEVELS, i18n.ROLES, i18n.DEPARTMENTS):
        assert all(len(pair) == 2 and all(pair) for pair in table.values())
    assert set(TENANT.departments) <= set(i18n.DEPARTMENTS)


def test_the_csrf_token_is_the_sessions_and_no_other():
    token = web.csrf_token("a.jwt.token")
    assert web.csrf_ok("a.jwt.token", token)
    assert not web.csrf_ok("another.jwt.token", token) and not web.csrf_ok("", web.csrf_token(""))
    assert not web.csrf_ok("a.jwt.token", "")
    cookie = web.session_cookie("a.jwt.token", 60)
    assert all(flag in cookie for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/console"))
