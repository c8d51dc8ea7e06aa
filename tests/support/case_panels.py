"""The case panels' queries expanded for tests, through :mod:`dashboards.expand` (Grafana 11.6's rules)."""

from __future__ import annotations

from dashboards.expand import Expansion, Variable


def expand(query: str, *, from_ms: int, to_ms: int, interval: str | None = None, district: str = "futian") -> str:
    """``query`` as Grafana 11.6 sends it for a single-value ``district`` (and at least ``interval``)."""
    variables = {"district": Variable.single("district", district)}
    return Expansion(from_ms=from_ms, to_ms=to_ms, min_interval=interval, variables=variables).expand(query)
