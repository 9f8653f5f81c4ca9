"""``contracts.__all__`` is the public surface services pin: keep it honest."""

from __future__ import annotations

import contracts


def test_all_names_exist_and_nothing_public_is_unlisted() -> None:
    for name in contracts.__all__:
        assert hasattr(contracts, name), name
    public = {n for n in vars(contracts) if not n.startswith("_")}
    modules = {n for n, v in vars(contracts).items() if type(v).__name__ == "module"}
    assert public - modules == set(contracts.__all__)


def test_all_is_sorted() -> None:
    assert list(contracts.__all__) == sorted(contracts.__all__)
