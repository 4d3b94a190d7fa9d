"""The seed counties as tenants (issue 14): their trees hold the published figures, and the
committed manifests are what the generator writes (python -m onegrid.operator.seed_trees)."""

import pytest
import yaml

from onegrid.contracts.registry import SAFE_LOADER
from onegrid.operator import seed_trees

from .helpers import CONTRACTS, registry

PENGLAI = "penglai"


def _by_level(tenant) -> dict[str, list]:
    out: dict[str, list] = {}
    for node in tenant.nodes.values():
        out.setdefault(node.level, []).append(node)
    return out


def test_penglai_holds_its_published_figures():
    t = registry().tenants[PENGLAI]
    levels = _by_level(t)
    assert len(t.grids()) == 1115  # 1,115 grids of 300-400 households
    assert len(levels["street"]) == 11  # 11 towns and streets
    assert sum(n.name.endswith("社区") for n in levels["community"]) == 17  # 17 communities
    assert set(t.departments) == set(registry().departments)  # the 16 departments' grids merged
    names = {n.name for n in t.nodes.values()}
    assert {"南王街道", "大柳行镇", "新港街道", "大丁家村"} <= names  # named in the source
    assert t.ancestor("370614-004-003-001", "community").name == "大丁家村"
    assert t.geography is not None and len(t.geography.grids()) == 1115


@pytest.mark.parametrize("tenant", sorted(seed_trees.TREES))
def test_committed_tree_is_the_generated_one(tenant):
    text = (CONTRACTS / "tenants" / f"{tenant}.yaml").read_text(encoding="utf-8")
    marker = seed_trees.GENERATED.format(tenant=tenant)
    assert marker in text, "regenerate: python -m onegrid.operator.seed_trees " + tenant
    assert text.split(marker)[1].lstrip("\n") == seed_trees.dump_tree(seed_trees.TREES[tenant]())
    assert yaml.load(text, Loader=SAFE_LOADER)["grid_tree"] == seed_trees.TREES[tenant]()


def test_ordinals():
    assert [seed_trees.ordinal(n) for n in (1, 9, 10, 11, 12, 20, 23)] == [
        "一", "九", "十", "十一", "十二", "二十", "二十三"
    ]  # fmt: skip


def test_dropping_an_anchored_pattern_for_a_wider_bound_is_backward_compatible():
    """The grid code lost its four-level pattern for max_length 64 (Taiyuan's five levels): the
    old pattern's strings are all 18 characters (19 with `$`'s final newline), so a reader
    bounded at 64 reads them all; one bounded at 10 would not."""
    from onegrid.contracts.compat import reader_breaks

    old = {"grid": {"type": "string", "pattern": "^[0-9]{6}-[0-9]{3}-[0-9]{3}-[0-9]{3}$"}}
    assert reader_breaks(old, {"grid": {"type": "string", "max_length": 64}}) == []
    [finding] = reader_breaks(old, {"grid": {"type": "string", "max_length": 10}})
    assert (finding.rule, finding.writer, finding.reader) == ("bound_tightened", 19, 10)
    unanchored = {"grid": {"type": "string", "pattern": "^[0-9]{6}"}}  # any length may follow
    assert reader_breaks(unanchored, {"grid": {"type": "string", "max_length": 64}})[0].rule == "bound_tightened"


def test_taiyuan_holds_its_published_figures_on_a_five_level_ladder():
    t = registry().tenants["taiyuan"]
    levels = _by_level(t)
    assert [r.level for r in t.ladder] == ["grid", "community", "street", "district", "city"]
    grids = t.grids()
    dedicated = [g for g in grids if g.dedicated]
    assert (len(grids), len(dedicated)) == (9375, 2433)  # 2,433 dedicated: schools, hospitals, markets
    assert (len(levels["district"]), len(levels["street"]), len(levels["community"])) == (10, 100, 1500)
    rural = {d.code for d in levels["district"] if d.name.endswith(("县", "市"))}
    tree_grids = [g for g in grids if not g.dedicated]
    in_rural = sum(t.ancestor(g.code, "district").code in rural for g in tree_grids)
    assert (len(tree_grids) - in_rural, in_rural) == (5282, 1660)  # urban, rural
    assert all(t.nodes[g.parent].level in ("street", "district") for g in dedicated)
    assert t.ancestor("140100-06-001-002-001", "community").name == "并州路二社区"
    assert len([g for g in grids if g.parent == "140100-06-001-002"]) == 10  # ten grid workers on duty


def test_a_dedicated_grid_is_routed_to_the_nearest_level_it_hangs_under():
    """A school's grid under a street has no community: a community-level rule goes to its
    street; one under a district goes to the district; a grid in the tree keeps the rule's level."""
    from onegrid.domain.routing import route

    t = registry().tenants["taiyuan"]
    street_school = "140100-22-005-903"  # under 阳曲县's fifth town
    assert t.nodes[street_school].dedicated and t.nodes[t.nodes[street_school].parent].level == "street"
    d = route(t, "illegal_business", "general", street_school)  # general: community level
    assert (d.level, d.unit) == ("street", "140100-22-005")
    district_market = next(g.code for g in t.grids() if g.dedicated and t.nodes[g.parent].level == "district")
    assert route(t, "illegal_business", "general", district_market).level == "district"
    assert route(t, "illegal_business", "critical", district_market).level == "district"
    in_tree = route(t, "illegal_business", "general", "140100-06-001-002-001")
    assert (in_tree.level, in_tree.unit) == ("community", "140100-06-001-002")
