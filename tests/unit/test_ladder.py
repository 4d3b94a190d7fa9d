"""The escalation ladder as a property of the tenant: any depth, offices, per-rung deadlines,
dedicated grids beside the tree, and the manifest check's reasons for bad ladders."""

import copy

import pytest

from onegrid.domain import supervision as sv
from onegrid.kernel.tenant import DEFAULT_LADDER, parse_tenant

from .helpers import QINLING, registry

TAIYUAN_LADDER = [
    {"level": "grid", "code": "[0-9]{3}", "office": "网格员", "acknowledge": "10m", "act": "4h"},
    {"level": "community", "code": "[0-9]{3}", "office": "社区居委会", "acknowledge": "1h", "act": "1d"},
    {"level": "street", "code": "[0-9]{3}", "office": "街道办", "acknowledge": "2h", "act": "1d"},
    {"level": "district", "code": "[0-9]{2}", "office": "区综治中心", "acknowledge": "4h", "act": "2d"},
    {"level": "city", "code": "[0-9]{6}", "office": "市指挥中心", "acknowledge": "8h", "act": "3d"},
]


def _doc(ladder=TAIYUAN_LADDER):
    """Qinling's manifest re-rooted as a small five-level city with two dedicated grids."""
    doc = copy.deepcopy(registry().tenants[QINLING].source)
    doc["ladder"] = copy.deepcopy(ladder)
    doc["grid_tree"] = {
        "level": "city",
        "code": "140100",
        "name": "太原市",
        "children": [
            {
                "level": "district",
                "code": "140100-05",
                "name": "小店区",
                "children": [
                    {
                        "level": "street",
                        "code": "140100-05-001",
                        "name": "坞城街道",
                        "children": [
                            {
                                "level": "community",
                                "code": "140100-05-001-001",
                                "name": "坞城社区",
                                "children": [{"level": "grid", "code": "140100-05-001-001-001", "name": "一网格"}],
                            },
                            # a school's grid beside the tree, under the street
                            {"level": "grid", "code": "140100-05-001-901", "name": "坞城小学", "dedicated": True},
                        ],
                    },
                    {"level": "grid", "code": "140100-05-902", "name": "山西省人民医院", "dedicated": True},
                ],
            }
        ],
    }
    for row in doc["routing"]:
        row["level"] = "grid" if row["level"] == "grid" else "street"
    return doc


def _parse(doc):
    reg = registry()
    return parse_tenant(doc, QINLING, reg.categories, reg.departments)


def test_a_manifest_without_a_ladder_keeps_the_four_rungs():
    t = registry().tenants[QINLING]
    assert t.ladder == DEFAULT_LADDER and t.levels == ("grid", "community", "street", "county")
    assert t.top == "county" and t.rung("street").office == "街道办"


def test_five_levels_and_dedicated_grids():
    t, problems = _parse(_doc())
    assert problems == []
    assert t.levels == ("grid", "community", "street", "district", "city") and t.top == "city"
    assert t.rung("district").office == "区综治中心" and t.rung("district").acknowledge.seconds == 4 * 3600
    assert t.rung("city").act.seconds == 3 * 86400
    assert {g.code for g in t.grids()} == {"140100-05-001-001-001", "140100-05-001-901", "140100-05-902"}
    assert t.nodes["140100-05-902"].dedicated and not t.nodes["140100-05-001-001-001"].dedicated
    # the ladder climbs every level for a grid in the tree ...
    ordinary = "140100-05-001-001-001"
    assert [t.next_level(lv, ordinary) for lv in t.levels] == ["community", "street", "district", "city", None]
    # ... and skips the levels a dedicated grid has no unit at
    assert t.next_level("grid", "140100-05-001-901") == "street"
    assert t.next_level("grid", "140100-05-902") == "district"
    assert t.ancestor_or_none("140100-05-902", "community") is None
    assert t.ancestor("140100-05-902", "district").code == "140100-05"


def test_on_due_climbs_the_tenants_ladder():
    t, _ = _parse(_doc())
    wo = {"id": "w", "status": "dispatched", "ack_span": 600, "resolve_span": 86400}
    case = {"status": "dispatched", "level": "street", "grid": "140100-05-001-001-001"}
    assert sv.on_due(t, "acknowledge", wo, case) == sv.Overdue("overdue_acknowledge", "district", 600)
    at_top = sv.on_due(t, "acknowledge", wo, {**case, "level": "city"})
    assert at_top == sv.Overdue("overdue_acknowledge", None, None)
    dedicated = sv.on_due(t, "acknowledge", wo, {**case, "level": "grid", "grid": "140100-05-902"})
    assert dedicated is not None and dedicated.escalate_to == "district"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(ladder=[TAIYUAN_LADDER[0]]), ("ladder", "must list at least two levels")),
        (lambda d: d["ladder"][0].update(level="cell"), ("ladder[0].level", "the bottom rung must be grid")),
        (lambda d: d["ladder"][2].update(level="community"), ("ladder[2].level", "'community' appears twice")),
        (lambda d: d["ladder"][3].update(level="District!"), ("ladder[3].level", "must be a level name")),
        (lambda d: d["ladder"][3].update(code="[0-9"), ("ladder[3].code", "must be the regular expression")),
        (lambda d: d["ladder"][3].update(code="[0-9-]{3}"), ("ladder[3].code", "must not match '-'")),
        (lambda d: d["ladder"][3].update(office=""), ("ladder[3].office", "is required")),
        (lambda d: d["ladder"][3].update(acknowledge="soon"), ("ladder[3].acknowledge", "is not <number><unit>")),
        (lambda d: d["ladder"][3].update(act="2w"), ("ladder[3].act", "unknown unit 'w'")),
        (lambda d: d["ladder"][3].pop("act"), ("ladder[3].act", "must be a duration")),
        (lambda d: d["ladder"][3].update(boss="x"), ("ladder[3].boss", "unknown key")),
    ],
)
def test_a_bad_ladder_is_refused_precisely(change, expected):
    doc = _doc()
    change(doc)
    _, problems = _parse(doc)
    assert len(problems) >= 1
    path, reason = problems[0]
    assert path == expected[0] and expected[1] in reason, problems


def test_a_bad_tree_against_the_ladder():
    doc = _doc()
    street = doc["grid_tree"]["children"][0]["children"][0]
    street["children"][1]["dedicated"] = False  # a grid under a street, not marked
    _, problems = _parse(doc)
    where = "grid_tree.children[0].children[0].children[1].level"
    assert problems == [(where, "expected 'community', got 'grid' (a grid under a street is marked dedicated: true)")]
    doc = _doc()
    doc["grid_tree"]["children"][0]["dedicated"] = True  # only grids hang beside the tree
    _, problems = _parse(doc)
    assert problems == [("grid_tree.children[0].dedicated", "only a grid may be dedicated")]
    doc = _doc()
    doc["grid_tree"]["children"][0]["code"] = "140100-5"  # the district's code is two digits
    _, problems = _parse(doc)
    assert problems == [("grid_tree.children[0].code", "'140100-5' must be its parent's code followed by -[0-9]{2}")]


def test_routing_levels_must_be_the_ladders():
    doc = _doc()
    doc["routing"][0]["level"] = "county"  # not a level of this city's ladder
    _, problems = _parse(doc)
    assert problems == [
        ("routing[0].level", "must be one of the ladder's levels grid, community, street, district, city")
    ]


def test_a_five_level_tree_with_dedicated_grids_can_be_drawn():
    from onegrid.operator.geography import draw

    t, _ = _parse(_doc())
    drawn = draw(t, 112.55, 37.87, 30.0)
    areas = {f["properties"]["code"] for f in drawn["features"] if "code" in f["properties"]}
    assert areas == set(t.nodes)
    offices = {
        f["properties"]["office"]: f["properties"]["name"] for f in drawn["features"] if "office" in f["properties"]
    }
    assert offices["140100-05"] == "小店区区综治中心" and offices["140100-05-001"] == "坞城街道办事处"


def test_a_rung_in_working_days_falls_due_on_the_tenants_calendar():
    """A rung may be written 1wd: the street office's item opened on a Friday evening is due at
    the close of Monday (the weekend does not count), not 24 hours later."""
    from datetime import datetime, timedelta, timezone

    from onegrid.domain import ladder as ld
    from onegrid.domain.calendar import WEEKENDS_ONLY, schedule

    ladder = copy.deepcopy(TAIYUAN_LADDER)
    ladder[2].update(acknowledge="1wd", act="8wh")
    tenant, problems = _parse(_doc(ladder))
    assert problems == []
    beijing = timezone(timedelta(hours=8))
    friday = datetime(2026, 3, 6, 20, 0, tzinfo=beijing).timestamp()
    due = schedule(tenant, WEEKENDS_ONLY).due
    item = ld.open_item(tenant, "c-1", "140100-05-001", "street", "community", "overdue", friday, "at", due)
    assert datetime.fromtimestamp(item.due, beijing) == datetime(2026, 3, 9, 17, 30, tzinfo=beijing)
    monday = datetime(2026, 3, 9, 9, 0, tzinfo=beijing).timestamp()
    acked = ld.acknowledge(tenant, item, "street-officer", monday, "at", due)
    # 8 working hours from Monday 09:00: 3 h before lunch, 4 h after, 1 h on Tuesday
    assert datetime.fromtimestamp(acked.due, beijing) == datetime(2026, 3, 10, 9, 30, tzinfo=beijing)
