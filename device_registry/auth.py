"""Who is calling and what they may do: roles, scopes and the permission table.

Roles: ``admin`` (everything, tokens included), ``technician`` (register, provision, verify, revoke,
rotate; add stalls, bases and vehicles), ``supervisor`` (read and revoke within their markets or
districts; acknowledge, assign, annotate and close cases there), ``viewer`` (read), ``ingest`` (the cloud
ingest's account: report alert, flag and base-acknowledgement events that open and feed cases; read).
Any token may be scoped to districts and/or markets; a supervisor's must be: a token scoped to district
D is the district supervisor of D (every market, base and vehicle in it), one scoped to market M the
market supervisor of M. Outside its scope a caller gets the same "not found" as for something that does
not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"
    TECHNICIAN = "technician"
    SUPERVISOR = "supervisor"
    VIEWER = "viewer"
    INGEST = "ingest"


PERMISSIONS: dict[str, frozenset[Role]] = {
    "read": frozenset(Role),
    "add_district": frozenset({Role.ADMIN}),
    "add_market": frozenset({Role.ADMIN}),
    "add_site": frozenset({Role.ADMIN, Role.TECHNICIAN}),  # stalls, planting bases, vehicles
    "register": frozenset({Role.ADMIN, Role.TECHNICIAN}),
    "provision": frozenset({Role.ADMIN, Role.TECHNICIAN}),
    "verify": frozenset({Role.ADMIN, Role.TECHNICIAN}),
    "revoke": frozenset({Role.ADMIN, Role.TECHNICIAN, Role.SUPERVISOR}),
    "read_audit": frozenset({Role.ADMIN, Role.SUPERVISOR}),
    "manage_tokens": frozenset({Role.ADMIN}),
    "handle_case": frozenset({Role.ADMIN, Role.SUPERVISOR}),  # acknowledge, assign, note, close
    "report_case_event": frozenset({Role.ADMIN, Role.INGEST}),  # the ingest's alerts, flags, base acks
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    role: Role
    districts: frozenset[str] = field(default_factory=frozenset)
    markets: frozenset[str] = field(default_factory=frozenset)

    @property
    def scoped(self) -> bool:
        return bool(self.districts or self.markets)

    def require(self, action: str) -> None:
        """Raise :class:`Forbidden` unless this caller's role may do ``action``."""
        if self.role not in PERMISSIONS[action]:
            raise Forbidden(f"role {self.role.value} may not {action.replace('_', ' ')}")

    def sees(self, district: str | None, market: str | None = None) -> bool:
        """True if something in ``district`` (and ``market``, for a stall) is within this caller's scope."""
        if not self.scoped:
            return True
        return (district is not None and district in self.districts) or (market is not None and market in self.markets)


LOCAL_ADMIN_ROLE = Role.ADMIN
