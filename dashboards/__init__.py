"""Supervisor dashboards as code: Grafana provisioning (datasources, dashboards, alert rules) generated from
Python, the series they read, and Grafana 11.6's expansion of their queries (for tests without Grafana).

Uploading to Grafana is :mod:`dashboards.push` (imported on its own: it needs grafana-client).
The legacy :data:`QUERIES` (plain InfluxQL read by the demo's summary) stay beside them."""

from .errors import DashboardError, ExpandError, ProvisioningError, PushError
from .expand import Expansion, Variable
from .generate import COMMITTED, boards, render, write
from .queries import QUERIES
from .series import SERIES

__all__ = [
    "COMMITTED",
    "QUERIES",
    "SERIES",
    "DashboardError",
    "ExpandError",
    "Expansion",
    "ProvisioningError",
    "PushError",
    "Variable",
    "boards",
    "render",
    "write",
]
