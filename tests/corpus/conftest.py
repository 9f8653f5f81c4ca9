from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.corpus.harness import Corpus


@pytest.fixture(scope="session")
def corpus() -> Iterator[Corpus]:
    """The corpus venv (built on first use, cached) and one driver process per application."""
    session = Corpus()
    yield session
    session.close()
