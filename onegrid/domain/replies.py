"""The citizen's two-way voice: a reply to the satisfaction SMS (满意度回访) read as a verdict,
and matched to the question it answers. Pure (docs/notify.md, "Replies").

The rule people can trust:
- a reply is `1` / `满意` (satisfied) or `2` / `不满意` (not satisfied), full-width digits,
  spaces and punctuation around it allowed, optionally with the question's code: the last four
  characters of the case number the SMS named (`1 3F2A`, `3F2A 1`, `13F2A`, or the whole
  number `1 c-…`);
- with one question open to that phone number, a bare verdict answers it;
- with several open, a bare verdict answers none: the citizen is sent the open questions'
  codes and asked again, and nothing is recorded on any case;
- a code answers the question it names, and only while it is open;
- anything else (no open question, an unknown number, other text, a code of no open question)
  is kept as an unmatched reply for the command centre, counted, never dropped.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

VERDICTS = {"1": "satisfied", "满意": "satisfied", "2": "not_satisfied", "不满意": "not_satisfied"}
VERDICT_ZH = {"satisfied": "满意", "not_satisfied": "不满意"}
_VERDICT = "不满意|满意|[12]"
_CODE = "c[0-9a-f]{16}|[0-9a-f]{4}"
_COMPACT = re.compile(rf"^({_VERDICT})({_CODE})$")
_SPLIT = re.compile(r"[\W_]+")  # whitespace and punctuation (a Chinese character is a word character)
MAX_TEXT = 500  # an SMS reply longer than this is cut where it is kept

MATCHED, AMBIGUOUS, UNMATCHED = "matched", "ambiguous", "unmatched"
REASONS = {
    "no_open_question": "no satisfaction question is open for this number",
    "not_a_verdict": "the text is not 1/满意 or 2/不满意",
    "unknown_code": "the code names no open question of this number",
    "several_open": "several questions are open and the reply names none",
    "code_collision": "the code names more than one open question",
    "case_moved_on": "the case no longer awaits the citizen's verdict",
}


@dataclass(frozen=True)
class Reply:
    verdict: str | None  # satisfied, not_satisfied, or None (not a verdict)
    code: str | None = None  # the short code or whole case number it names (lower case, no dash)


@dataclass(frozen=True)
class Question:
    """A satisfaction SMS sent to a number for a case awaiting the verdict."""

    case_id: str
    asked: float
    summary: str = ""

    @property
    def code(self) -> str:
        return short_code(self.case_id)


@dataclass(frozen=True)
class Outcome:
    outcome: str  # matched, ambiguous, unmatched
    reason: str = ""  # one of REASONS ("" when matched)
    case_id: str = ""
    verdict: str = ""
    asked: tuple[Question, ...] = ()  # ambiguous: the open questions the citizen is asked to choose from

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "case_id": self.case_id,
            "verdict": self.verdict,
            "codes": [q.code for q in self.asked],
        }


def short_code(case_id: str) -> str:
    """The code a satisfaction SMS carries for its case: the case number's last four characters."""
    return case_id[-4:].upper()


def parse(text: str) -> Reply:
    """Read a reply: a verdict and the code it names, or Reply(None) for anything else."""
    t = unicodedata.normalize("NFKC", text or "").lower().replace("编号", " ").replace("代码", " ")
    t = re.sub(r"\bc-([0-9a-f]{16})\b", r"c\1", t)
    tokens = [x for x in _SPLIT.split(t) if x]
    if len(tokens) == 1:
        if tokens[0] in VERDICTS:
            return Reply(VERDICTS[tokens[0]])
        m = _COMPACT.match(tokens[0])
        return Reply(VERDICTS[m.group(1)], m.group(2)) if m else Reply(None)
    if len(tokens) == 2:
        for verdict, code in (tokens, tokens[::-1]):
            if verdict in VERDICTS and re.fullmatch(_CODE, code):
                return Reply(VERDICTS[verdict], code)
    return Reply(None)


def _names(q: Question, code: str) -> bool:
    return code == q.case_id.replace("-", "") if len(code) > 4 else code == q.code.lower()


def match(reply: Reply, questions: list[Question]) -> Outcome:
    """Which open question (if any) a reply answers (the rule in the module's docstring)."""
    if not questions:
        return Outcome(UNMATCHED, "no_open_question")
    if reply.verdict is None:
        return Outcome(UNMATCHED, "not_a_verdict")
    newest_first = tuple(sorted(questions, key=lambda q: (-q.asked, q.case_id)))
    if reply.code is None:
        if len(newest_first) == 1:
            return Outcome(MATCHED, "", newest_first[0].case_id, reply.verdict)
        return Outcome(AMBIGUOUS, "several_open", "", reply.verdict, newest_first)
    named = [q for q in newest_first if _names(q, reply.code)]
    if not named:
        return Outcome(UNMATCHED, "unknown_code", "", reply.verdict)
    if len(named) > 1:
        return Outcome(AMBIGUOUS, "code_collision", "", reply.verdict, tuple(named))
    return Outcome(MATCHED, "", named[0].case_id, reply.verdict)


def normal_phone(phone: str) -> str:
    """A mobile number as the digits people mean: +86 / 0086 / 86 before 11 digits dropped."""
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", phone or ""))
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix) :]
    return digits


def phone_key(tenant: str, phone: str) -> str:
    """What a number is matched by where only matching is needed (a hash, salted per county)."""
    return hashlib.sha256(f"{tenant}|{normal_phone(phone)}".encode()).hexdigest()[:32]


def ask_again_text(tenant_name: str, questions: tuple[Question, ...], limit: int = 5) -> str:
    """The SMS back to a bare verdict with several questions open: their codes, and how to answer."""
    shown = "；".join(f"{q.code}“{_short(q.summary)}”" for q in questions[:limit])
    more = f"等 {len(questions)} 件" if len(questions) > limit else ""
    example = questions[0].code
    return (
        f"【{tenant_name}】您有 {len(questions)} 件事项待评价：{shown}{more}。未记录您的评价，"
        f"请回复 1（满意）或 2（不满意）加代码，如“1 {example}”。"
    )


def _short(summary: str, n: int = 12) -> str:
    return summary if len(summary) <= n else summary[:n] + "…"


def citizen_actor(key: str) -> str:
    """Who the verdict is recorded as: the citizen, by the hash of their number (not the number)."""
    return f"citizen:sms:{key[:12]}"


def timeline_note(verdict: str, text: str) -> str:
    return f"by SMS reply (短信回复): {VERDICT_ZH[verdict]}, “{text.strip()[:60]}”"
