"""The README's configuration table is generated from the settings model: keep it current."""

from __future__ import annotations

from pathlib import Path

from worker.settings import ReplaySettings
from worker.settings_flags import markdown_table


def test_readme_lists_every_setting() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert markdown_table() in readme, (
        "README's configuration table is stale: paste markdown_table()"
    )
    assert markdown_table(ReplaySettings, only_own=True) in readme, (
        "README's replay settings are stale: paste markdown_table(ReplaySettings, only_own=True)"
    )


def test_readme_gives_the_two_commands() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme
