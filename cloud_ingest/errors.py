"""Errors of the cloud ingest::

    IngestError
    ├── StoreUnavailable   InfluxDB did not take a write (down, timing out, 5xx): retry later
    ├── StoreRejected      InfluxDB refused a write as bad (4xx): our lines are wrong, do not retry as is
    └── RegistryAway       the registry did not take case events (unreachable, 5xx, token refused): retry later

Payloads that break the contract are not errors here: they are rejections, counted by reason
(:class:`device_profiles.EnvelopeError`).
"""

from __future__ import annotations


class IngestError(Exception):
    """Base class of every error raised by :mod:`cloud_ingest`."""


class StoreUnavailable(IngestError):
    """The time-series store could not be reached or failed; the write may be retried."""


class StoreRejected(IngestError):
    """The time-series store refused the data as invalid."""


class RegistryAway(IngestError):
    """The registry API did not take the case events (unreachable, or answered other than 200 or 422)."""
