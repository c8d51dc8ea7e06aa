"""Where each kind of device may be registered: the kind its profile declares against the kind of place.

A market scale stands at a stall (the market's fair scale too, at its ``FAIR`` stall); soil and air
sensors sit at a planting base; a GPS receiver rides a rapid-test vehicle; a rapid-test analyser works in
a vehicle or in a market's testing room, registered as a stall. The ingest tags records with the place,
so a soil sensor "at stall A-017" would file soil moisture under a vendor. Checked by the service on
register and on every move (so the API refuses too), and stated in the published JSON Schema of
registering (each place alternative lists the profiles allowed there).
"""

from __future__ import annotations

from device_profiles import builtin_profiles

PLACES_FOR_KIND: dict[str, tuple[str, ...]] = {
    "scale": ("stall",),
    "sensor": ("base",),
    "gps": ("vehicle",),
    "rapid_test": ("vehicle", "stall"),
}
PLACE_WORDS = {"stall": "a market stall", "base": "a planting base", "vehicle": "a rapid-test vehicle"}
PLACE_OPTIONS = {"stall": "--market and --stall", "base": "--base", "vehicle": "--vehicle"}


def placement_problem(profile_id: str, kind: str, place: str) -> str | None:
    """Why a device of ``kind`` (profile ``profile_id``) may not be at a ``place`` (stall, base, vehicle)."""
    allowed = PLACES_FOR_KIND.get(kind, ())
    if place in allowed:
        return None
    where = " or ".join(f"{PLACE_WORDS[p]} ({PLACE_OPTIONS[p]})" for p in allowed) or "no place"
    return f"a {kind.replace('_', '-')} device ({profile_id}) cannot be at {PLACE_WORDS[place]}: it belongs at {where}"


def profiles_allowed_at(place: str) -> list[str]:
    """The shipped profiles whose devices may be at a ``place``, sorted."""
    return sorted(p.id for p in builtin_profiles().values() if place in PLACES_FOR_KIND.get(p.kind, ()))
