"""Jinja2 pages for the command-centre service: autoescaped, the language's words and the
labels of statuses, levels, departments and categories handed to every template."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from onegrid.adapters.web import i18n

CST = 8 * 3600
TEMPLATES = Path(__file__).resolve().parents[3] / "services" / "console" / "templates"


def environment(categories: dict[str, dict]) -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]), trim_blocks=True)

    def category(cid: str, lang: str) -> str:
        row = categories.get(cid) or {}
        return str(row.get("name_zh" if lang == "zh" else "name") or cid)

    env.globals.update(
        status=lambda s, lang: i18n.pick(i18n.STATUS, s, lang),
        level=lambda s, lang: i18n.pick(i18n.LEVELS, s, lang),
        role=lambda s, lang: i18n.pick(i18n.ROLES, s, lang),
        dept=lambda s, lang: i18n.pick(i18n.DEPARTMENTS, s, lang),
        step=lambda s, lang: i18n.pick(i18n.ACTIONS, s, lang),
        category=category,
        clock=_clock,
        iso=_iso,
        pct=lambda rate: "—" if rate is None else f"{rate * 100:.2f}%",
    )
    return env


def page(env: Environment, template: str, lang: str, **context) -> str:
    return env.get_template(template).render(lang=lang, t=i18n.words(lang), **context)


def _clock(at) -> str:
    """Epoch seconds as the county's wall clock (China Standard Time, UTC+8)."""
    if not at:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(at) + CST))


def _iso(at) -> str:
    if not at:
        return ""
    try:
        stamp = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    except ValueError:
        return str(at)
    return _clock(stamp.timestamp())
