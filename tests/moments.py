"""Moments in catalog text: a default create_all() writes as ``'now()'`` is stored as the
timestamp of the CREATE, so two databases built a moment apart differ there (two create_all()
runs too). Tests comparing two catalogs replace each timestamp or date literal of the last or
next day (no model spells a fixed date that close to the test run) with ``'<moment>'``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["without_moments"]


def without_moments(text: str) -> str:
    today = datetime.now(UTC).date()
    days = "|".join(str(today + timedelta(days=d)) for d in (-1, 0, 1))
    return re.sub(rf"'(?:{days})(?: [0-9:.]+(?:[+-][0-9:]+)?)?'", "'<moment>'", text)
