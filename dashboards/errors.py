"""The dashboards package's one error tree::

DashboardError
├── ExpandError      a panel query cannot be expanded as Grafana would (our definitions are wrong)
├── ProvisioningError  the provisioning directory cannot be written or read back
└── PushError        Grafana refused or could not be reached (the peer, or its settings, are wrong)
"""

from __future__ import annotations


class DashboardError(Exception):
    """Base of every error raised by :mod:`dashboards`."""


class ExpandError(DashboardError):
    """A query names a variable the dashboard lacks, or a form this expander does not model."""


class ProvisioningError(DashboardError):
    """The provisioning files could not be written."""


class PushError(DashboardError):
    """Uploading to Grafana failed; the message names the object and Grafana's answer."""
