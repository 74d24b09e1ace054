"""The README's table of analyst views names only views that exist, each with its as-of twin."""

from __future__ import annotations

import re
from pathlib import Path

from history.client import Warehouse

README = Path(__file__).resolve().parents[3] / "README.md"


def _documented_views() -> set[str]:
    text = README.read_text()
    section = text[text.index("## Tables for analysts") : text.index("## Ten questions for the history")]
    return set(re.findall(r"`([a-z_]+_current)`", section))


def test_every_documented_view_exists_with_its_as_of_twin(shared_database: Warehouse) -> None:
    documented = _documented_views()
    assert len(documented) >= 9
    existing = {
        str(name)
        for (name,) in shared_database.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    }
    assert documented <= existing, sorted(documented - existing)
    twins = {name.removesuffix("_current") + "_at" for name in documented}
    assert twins <= existing, sorted(twins - existing)
