"""Is this report one already being handled? A confidence for each candidate, from four things
read off the two cases: category (must match), time (how far apart they happened, within the
tenant's window), place and the words of the summaries. Pure: no storage, no clock.

Place: when both cases carry a location, the distance decides (1 at the same spot, 0 at the
tenant's `duplicates.distance_m` and beyond, where the pair is no candidate at all); the grid
is not enough, since two shops 30 m apart in one grid are two cases and one report 15 m away
across a grid line is the same. When either lacks a location the place is known only to the
grid: the same grid scores `UNLOCATED_PLACE`, another grid rules the pair out, and such a pair
is never merged automatically, at most suggested to the command centre.

Words: the Dice coefficient of the two summaries' character bigrams (Chinese has no spaces to
split words on, and a paraphrase of the same incident keeps most of its two-character words:
路名, 门牌, 店名, 占道); punctuation, spaces and bracketed tags like `[illegal_business]` are
dropped first. No model: this runs on every registration.

The confidence is a weighted sum (TEXT_WEIGHT + PLACE_WEIGHT + TIME_WEIGHT = 1). docs/duplicates.md
gives the measured precision and recall on the labelled pairs of sim/duplicate_pairs.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from onegrid.domain.lifecycle import TERMINAL_CASE
from onegrid.domain.onsite import reported_on_site, settled_on_site

TEXT_WEIGHT, PLACE_WEIGHT, TIME_WEIGHT = 0.5, 0.35, 0.15
UNLOCATED_PLACE = 0.5  # same grid, no distance to go by
_TAG = re.compile(r"\[[^\]]*\]")
_NOISE = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Thresholds:
    """The tenant's `duplicates:` confidences: at or above `auto_merge` routing merges the
    report; at or above `suggest` the command centre is asked; below, a case of its own."""

    window: float  # seconds between the two occurrences
    distance_m: float  # beyond this the two are different places
    auto_merge: float
    suggest: float


@dataclass(frozen=True)
class Match:
    """One candidate's score, with what made it (kept on a suggestion for the command centre)."""

    case_id: str
    primary_id: str
    confidence: float
    text: float  # 0..1, bigram Dice of the summaries
    place: float  # 0..1
    time: float  # 0..1
    distance_m: float | None  # None: a location is missing on one side
    same_grid: bool

    @property
    def located(self) -> bool:
        return self.distance_m is not None

    def verdict(self, th: Thresholds) -> str:
        """merge | suggest | distinct. Unlocated pairs are never merged without a person."""
        if self.confidence >= th.auto_merge and self.located:
            return "merge"
        if self.confidence >= th.suggest:
            return "suggest"
        return "distinct"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Candidates:
    """What `best_match` weighs a case against: the cases of its category near in time (itself
    left out), and the `pair_key`s among them a person said are distinct."""

    cases: list[dict]
    distinct: frozenset[str]


def normalise(summary: str | None) -> str:
    return _NOISE.sub("", _TAG.sub("", summary or "")).lower()


def bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)} if len(text) > 1 else {text} if text else set()


def text_similarity(a: str | None, b: str | None) -> float:
    """Dice coefficient of the normalised summaries' character bigrams, 0..1."""
    x, y = bigrams(normalise(a)), bigrams(normalise(b))
    if not x or not y:
        return 0.0
    return 2 * len(x & y) / (len(x) + len(y))


def distance_m(a: dict | None, b: dict | None) -> float:
    """Great-circle distance between two {lat, lon}; infinite when either is unknown."""
    if not a or not b:
        return math.inf
    la1, lo1, la2, lo2 = map(math.radians, (a["lat"], a["lon"], b["lat"], b["lon"]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def _occurred(case: dict) -> float:
    return float(case.get("occurred") or case["at"])


def score(case: dict, other: dict, th: Thresholds) -> Match | None:
    """`case` against the earlier `other`; None when it cannot be the same incident (another
    category, too far apart in time or place, another grid without locations)."""
    if other["category"] != case["category"]:
        return None
    gap = abs(_occurred(case) - _occurred(other))
    if gap > th.window:
        return None
    same_grid = other.get("grid") == case.get("grid")
    if case.get("location") and other.get("location"):
        metres: float | None = distance_m(case["location"], other["location"])
        if metres is None or metres > th.distance_m:
            return None
        place = 1.0 - metres / th.distance_m if th.distance_m > 0 else 1.0
    elif same_grid:
        metres, place = None, UNLOCATED_PLACE
    else:
        return None
    text = text_similarity(case.get("summary"), other.get("summary"))
    when = 1.0 - gap / th.window if th.window > 0 else 1.0
    confidence = TEXT_WEIGHT * text + PLACE_WEIGHT * place + TIME_WEIGHT * when
    return Match(
        case["id"],
        other["id"],
        round(confidence, 4),
        round(text, 4),
        round(place, 4),
        round(when, 4),
        None if metres is None else round(metres, 1),
        same_grid,
    )


def on_site(case: dict) -> bool:
    """Settled on site (closed, or held for its check), or about to be: never a primary."""
    return settled_on_site(case) or (case.get("status") == "registered" and reported_on_site(case))


def best_match(
    case: dict, candidates: Iterable[dict], th: Thresholds, distinct: frozenset[str] | set[str] = frozenset()
) -> Match | None:
    """The most likely primary among the open cases, skipping pairs a person said are distinct
    (`distinct` holds their `pair_key`s). Ties go to the earliest registered. A case registered
    after this one (`at`, then id) counts only once it is past registration: while it is still
    `registered`, its own routing will find this one, so two reports never merge into each other;
    once routed, it did not see this one (registered concurrently, written after its look-up),
    and this one is the duplicate."""
    mine = (case["at"], case["id"])
    best: Match | None = None
    for other in sorted(candidates, key=lambda c: (c["at"], c["id"])):
        later = (other["at"], other["id"]) > mine
        if (other["at"], other["id"]) == mine or (later and other.get("status") == "registered"):
            continue
        if other.get("status") in TERMINAL_CASE or pair_key(case["id"], other["id"]) in distinct:
            continue
        if on_site(other):  # settled in the grid: a later report is a new problem, not its twin
            continue
        m = score(case, other, th)
        if m is not None and (best is None or m.confidence > best.confidence):
            best = m
    return best


def pair_key(a: str, b: str) -> str:
    """One name for an unordered pair of cases."""
    return "|".join(sorted((a, b)))


SUGGESTION_STATES = ("open", "confirmed", "dismissed")
DECISIONS = {"confirm": "confirmed", "dismiss": "dismissed"}


@dataclass(frozen=True)
class Suggestion:
    """A likely duplicate routing did not merge on its own: the command centre confirms it (the
    case is merged into `primary_id`) or dismisses it (the two are distinct, never suggested
    again). One per case: its best candidate."""

    case_id: str
    primary_id: str
    match: Match
    at: str  # when routing suggested it
    status: str = "open"
    decided_by: str = ""
    decided_at: str = ""
    note: str = ""

    def as_dict(self) -> dict:
        return {**asdict(self), "match": self.match.as_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> Suggestion:
        return cls(**{**d, "match": Match(**d["match"])})

    def decided(self, decision: str, actor: str, at: str, note: str = "") -> Suggestion:
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}; one of {', '.join(DECISIONS)}")
        return Suggestion(self.case_id, self.primary_id, self.match, self.at, DECISIONS[decision], actor, at, note)
