"""reconcile(): every planned event ends as exactly one case, or in quarantine as planned."""

from collections import Counter
from dataclasses import dataclass

from sim.reconcile import reconcile


@dataclass
class P:
    event_id: str
    expect: str
    department: str


def _case(event_id, department):
    return {"id": f"c-{event_id}", "department": department}


PLANNED = [
    P("e1", "case", "water"),
    P("e2", "case", "health"),
    P("e3", "schema_violation", "water"),
    P("e4", "malformed_json", "unknown"),
]
GOOD_CASES = {"e1": _case("e1", "water"), "e2": _case("e2", "health")}
GOOD_REASONS = {"e3": ["schema_violation"], "e4": ["malformed_json"]}


def test_all_good():
    rec = reconcile(PLANNED, GOOD_CASES, GOOD_REASONS)
    assert rec.ok and rec.problems == []
    assert (rec.published, rec.cases_expected, rec.cases_found) == (4, 2, 2)
    assert rec.quarantine_expected == rec.quarantine_found == Counter(schema_violation=1, malformed_json=1)


def test_nothing_planned():
    rec = reconcile([], {}, {})
    assert rec.ok and rec.published == 0


def test_missing_case():
    rec = reconcile(PLANNED, {"e1": GOOD_CASES["e1"]}, GOOD_REASONS)
    assert not rec.ok
    assert rec.cases_expected == 2 and rec.cases_found == 1
    assert rec.problems == ["e2: expected a case, found none (quarantined: no)"]


def test_missing_case_that_was_quarantined_says_why():
    rec = reconcile(PLANNED, {"e1": GOOD_CASES["e1"]}, {**GOOD_REASONS, "e2": ["unknown_grid"]})
    assert not rec.ok and rec.cases_found == 1
    assert rec.problems[0] == "e2: expected a case, found none (quarantined: ['unknown_grid'])"


def test_missing_case_that_was_quarantined_is_one_problem_not_a_made_case():
    rec = reconcile(PLANNED, {"e1": GOOD_CASES["e1"]}, {**GOOD_REASONS, "e2": ["unknown_grid"]})
    assert not any("made a case" in p for p in rec.problems), rec.problems


def test_case_in_the_wrong_department():
    rec = reconcile(PLANNED, {**GOOD_CASES, "e2": _case("e2", "water")}, GOOD_REASONS)
    assert rec.cases_found == 1
    assert rec.problems == ["e2: case c-e2 is water's, not health's"]


def test_quarantined_with_a_different_reason():
    rec = reconcile(PLANNED, GOOD_CASES, {**GOOD_REASONS, "e3": ["unknown_grid"]})
    assert rec.quarantine_expected["schema_violation"] == 1 and rec.quarantine_found["schema_violation"] == 0
    assert rec.problems == ["e3: expected one quarantine entry 'schema_violation', found ['unknown_grid']"]


def test_quarantined_twice_is_a_problem():
    rec = reconcile(PLANNED, GOOD_CASES, {**GOOD_REASONS, "e3": ["schema_violation", "schema_violation"]})
    assert not rec.ok and rec.quarantine_found["schema_violation"] == 0
    assert rec.problems[0].startswith("e3: expected one quarantine entry")


def test_expected_quarantine_not_found():
    rec = reconcile(PLANNED, GOOD_CASES, {"e3": ["schema_violation"]})
    assert rec.problems == ["e4: expected one quarantine entry 'malformed_json', found []"]


def test_case_and_quarantine_both_for_an_expected_case():
    rec = reconcile(PLANNED, GOOD_CASES, {**GOOD_REASONS, "e1": ["id_reused"]})
    assert rec.cases_found == 2  # the case itself is fine...
    assert rec.problems == ["e1: made a case and was quarantined too (['id_reused'])"]  # ...the extra entry is not


def test_case_and_quarantine_both_for_an_expected_quarantine():
    rec = reconcile(PLANNED, {**GOOD_CASES, "e3": _case("e3", "water")}, GOOD_REASONS)
    assert rec.quarantine_found["schema_violation"] == 1
    assert rec.problems == ["e3: expected quarantine as schema_violation, made case c-e3"]


def test_case_made_for_an_event_meant_for_quarantine():
    rec = reconcile(PLANNED, {**GOOD_CASES, "e4": _case("e4", "water")}, {"e3": ["schema_violation"]})
    assert rec.problems == [
        "e4: expected quarantine as malformed_json, made case c-e4",
        "e4: expected one quarantine entry 'malformed_json', found []",
    ]
