"""docs/onboarding.md lists every service with its nameko class and the port the documented
commands give it: the table is the catalogue's (onegrid/catalogue.py), in its order."""

from __future__ import annotations

import re
from pathlib import Path

from onegrid.catalogue import SERVICES

DOC = Path(__file__).resolve().parents[2] / "docs" / "onboarding.md"


def expected_table() -> str:
    rows = [f"| {name} | `{target}` | {8201 + i} |" for i, (name, target) in enumerate(SERVICES.items())]
    return "\n".join(["| service | nameko class | port here |", "| --- | --- | --- |", *rows])


def test_the_services_table_is_the_catalogues():
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- services:[^>]*-->\n(.*?)\n<!-- /services -->", text, re.S)
    assert found, "docs/onboarding.md lost its generated services table"
    assert found.group(1) == expected_table(), "regenerate it from tests/unit/test_docs_services.expected_table()"


def test_the_documented_commands_start_every_service_on_its_port():
    text = DOC.read_text(encoding="utf-8")
    loop = re.search(r"for svc in ([a-z ]+); do", text)
    assert loop, "the loop that starts the services is gone"
    started = loop.group(1).split() + re.findall(r"onegrid serve ([a-z0-9]+) &", text)
    assert started == list(SERVICES)
    assert "WEB_SERVER_ADDRESS=127.0.0.1:8206" in text  # notify, after the five of the loop
