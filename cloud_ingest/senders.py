"""What a device may say: the record types its profile declares, about devices of its own market.

A valid tag proves who sent a message, not that the sender may say it. A stall scale that sends a
``reweigh`` or a ``rapid_test`` would accuse another scale or a stall; so the ingest refuses

- a record type the sender's device profile does not list under ``records`` (``record_not_allowed``;
  ``raw_evidence``, what the agent could not make a record of, may come from any device):
  a stall scale sends ``sale`` and ``scale_state``, a fair scale ``reweigh``, a rapid-test analyzer
  ``rapid_test``, …;
- a record about another device (``reweigh.stall_device``, ``check_weighing.scale_device``,
  ``rapid_test.source_id``) that the ingest does not know, that is the sender itself, that is not the
  kind of device the record is about (a re-weigh names a scale that sells; a sample comes from a stall's
  scale or a base's gateway), or that stands in another market than the sender (``foreign_reference``).
  A sender without a market (a device on a rapid-test vehicle) may name any known device.

One device id may stand for a gateway with several sources: a planting base's gateway reads soil and
air sensors on one RS-485 line, a rapid-test vehicle has an analyzer and a GPS receiver. The registry
names the gateway's main profile; the record types of profiles of a *companion kind* are allowed too
(:data:`COMPANION_KINDS`: sensors with sensors, a rapid-test analyzer with GPS). A scale has no
companions: a stall scale sends ``sale`` and ``scale_state``, nothing else.

Where the facts come from: the registry's view (each device's profile and place) or a devices file. A
devices-file entry without a ``profile`` is not restricted by type (the registry always names one); an
entry naming a profile this ingest does not know may send nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from device_profiles import EnvelopeError, Profile
from device_profiles.loader import builtin_profiles
from device_profiles.records import UNIVERSAL_RECORDS

#: Kinds of profile that may share one device id (one gateway) with a profile of the key's kind.
COMPANION_KINDS: Mapping[str, frozenset[str]] = {
    "sensor": frozenset({"sensor"}),
    "rapid_test": frozenset({"gps"}),
    "gps": frozenset({"rapid_test"}),
}

#: Record fields that name another device, by record type, and what that device must send to be named there:
#: a re-weigh or a check weighing is about a scale that sells, a rapid-test sample comes from a stall (its
#: scale) or a planting base (its gateway).
REFERENCE_FIELDS: Mapping[str, tuple[str, frozenset[str]]] = {
    "reweigh": ("stall_device", frozenset({"sale"})),
    "check_weighing": ("scale_device", frozenset({"sale"})),
    "rapid_test": ("source_id", frozenset({"sale", "soil", "air"})),
}


class SenderRules:
    """Checks an envelope's records against what its sender may say; raises :class:`EnvelopeError`."""

    def __init__(
        self,
        *,
        profile_for: Callable[[str], str | None],
        tags_for: Callable[[str], Mapping[str, str]],
        known: Callable[[str], bool],
        profiles: Mapping[str, Profile] | None = None,
    ) -> None:
        self.profile_for = profile_for
        self.tags_for = tags_for
        self.known = known
        profiles = builtin_profiles() if profiles is None else profiles
        self._allowed = {
            pid: frozenset(p.records).union(
                UNIVERSAL_RECORDS, *(q.records for q in profiles.values() if q.kind in COMPANION_KINDS.get(p.kind, ()))
            )
            for pid, p in profiles.items()
        }

    def allowed(self, device: str) -> frozenset[str] | None:
        """The record types ``device`` may send; None when its profile is not known (no restriction)."""
        profile = self.profile_for(device)
        if profile is None:
            return None
        return self._allowed.get(profile, frozenset())

    def check(self, device: str, records: Sequence[Mapping[str, Any]]) -> None:
        allowed = self.allowed(device)
        market: str | None = None
        for i, rec in enumerate(records):
            rtype = rec["type"]
            if allowed is not None and rtype not in allowed:
                raise EnvelopeError(
                    "record_not_allowed",
                    f"records[{i}]: {device} ({self.profile_for(device)}) may not send {rtype} records",
                )
            reference = REFERENCE_FIELDS.get(rtype)
            if reference is None:
                continue
            ref_field, sends = reference
            ref = rec.get(ref_field)
            if not isinstance(ref, str) or not ref:
                continue  # the record type makes the field optional; nobody is named
            if not self.known(ref):
                raise EnvelopeError("foreign_reference", f"records[{i}].{ref_field}: {ref!r:.70} is no known device")
            if ref == device:
                raise EnvelopeError("foreign_reference", f"records[{i}].{ref_field}: {device} names itself")
            named = self.allowed(ref)
            if named is not None and not named & sends:
                raise EnvelopeError(
                    "foreign_reference",
                    f"records[{i}].{ref_field}: {ref} ({self.profile_for(ref)}) sends none of {sorted(sends)}",
                )
            if market is None:
                market = self.tags_for(device).get("market", "")
            if market and self.tags_for(ref).get("market") != market:
                raise EnvelopeError(
                    "foreign_reference", f"records[{i}].{ref_field}: {ref!r} is not in {device}'s market {market}"
                )
