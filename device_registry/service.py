"""The registry's operations, one method per thing a user does, each checked against the caller's role
and scope and written to the audit log in the same transaction as the change. :class:`Registry` joins
the areas: places (:mod:`.places`), devices (:mod:`.devices`), access (:mod:`.access`), cases
(:mod:`.cases`)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import models as m
from .access import Access
from .auth import Principal, Role
from .base import BundleDefaults
from .cases import Cases
from .devices import Devices
from .places import Places
from .schemas import TOKEN_DAYS, TokenCreated, TokenIn

__all__ = ["BundleDefaults", "Registry", "admin_token_count", "bootstrap_admin_token"]


class Registry(Places, Devices, Access, Cases):
    """The registry as seen by one caller, in one database session."""


def bootstrap_admin_token(
    db: Session, name: str, actor: str, *, expires_days: int = TOKEN_DAYS, never_expires: bool = False
) -> TokenCreated:
    """The first admin token (``zhijian registry init``), shown once. It expires like any other unless
    ``never_expires`` (``--no-expiry``), which the audit entry records."""
    reg = Registry(db, Principal(actor, Role.ADMIN))
    return reg.create_token(TokenIn(name=name, role=Role.ADMIN, expires_days=expires_days), never_expires=never_expires)


def admin_token_count(db: Session) -> int:
    """Admin tokens ever made (revoked and expired ones too): none means ``zhijian registry init`` has not
    yet handed out the first, so running it again must not mint a second one unasked."""
    return db.scalar(select(func.count()).select_from(m.ApiToken).where(m.ApiToken.role == Role.ADMIN.value)) or 0
