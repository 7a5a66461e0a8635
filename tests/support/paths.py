"""Where the tests find the checked-in data: the repository root, the fixtures and the shipped GloVe sample."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SHIPPED_GLOVE = ROOT / "data" / "glove.6B.50d.sst2.txt.gz"
SHARED_DATA = ROOT.parent / "shared" / "data"
