"""Unit tests: pure modules only (no broker, no Redis, no network).

A package, so these modules do not clash with same-named ones under tests/integration.
Hypothesis keeps its example database and caches in the temp dir, not in the checkout."""

import tempfile
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "onegrid-unit-hypothesis")
