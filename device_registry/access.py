"""Who may connect and who did what: issuing and rotating device credentials (bundles), revoking devices,
API tokens, and reading the audit log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import String, and_, cast, or_, select

from device_profiles import builtin
from device_profiles.bundle import BrokerSection, Bundle, SourceSection, TlsSection
from device_profiles.bundle_text import qr_text

from . import models as m
from .base import NOT_FOUND, RegistryBase, as_utc
from .case_models import Case
from .credentials import derive_integrity_key, hash_password, key_fingerprint, new_api_token, new_device_password
from .errors import Conflict, InvalidInput, NotFound
from .schemas import (
    AuditOut,
    Page,
    ProvisionIn,
    ProvisionOut,
    RevocationOut,
    RevokeIn,
    TokenCreated,
    TokenIn,
    TokenOut,
)


class Access(RegistryBase):
    """Credentials, revocations, API tokens and the audit log."""

    def provision(self, device_id: str, data: ProvisionIn, *, action: str = "provision") -> ProvisionOut:
        """New credentials for a device (its first, or replacing the current ones) and its bundle.

        The password and key are in the returned bundle only; the registry keeps the password's hash and
        the key's version and fingerprint. Old credentials are retired, so the broker refuses them once
        its files are applied."""
        self.who.require("provision")
        if self.bundles is None:
            raise InvalidInput("this registry has no key secret configured; provisioning is not possible")
        d = self._device(device_id)
        if d.revoked_at is not None:
            raise Conflict(f"device {device_id!r} is revoked; register a new device id for the replacement")
        now = m.utcnow()
        current = self.db.scalars(
            select(m.Credential).where(m.Credential.device_id == d.id).order_by(m.Credential.key_version)
        ).all()
        for c in current:
            if c.retired_at is None:
                c.retired_at = now
        version = (current[-1].key_version if current else 0) + 1
        key = derive_integrity_key(self.bundles.key_secret, d.id, version)
        password = new_device_password()
        fingerprint = key_fingerprint(key)
        self.db.add(
            m.Credential(
                device_id=d.id, key_version=version, password_hash=hash_password(password), key_fingerprint=fingerprint
            )
        )
        self._audit(action, "device", d.id, key_version=version, key_fingerprint=fingerprint)
        self._commit()
        bundle = self._bundle(d, key, password, data)
        return ProvisionOut(
            device_id=d.id, key_version=version, key_fingerprint=fingerprint, bundle=bundle, qr_text=qr_text(bundle)
        )

    def _bundle(self, d: m.Device, key: bytes, password: str, data: ProvisionIn) -> Bundle:
        assert self.bundles is not None
        b = self.bundles
        tls = None
        if b.ca_pem:
            cert_pem = key_pem = None
            if b.client_ca is not None:
                cert_pem, key_pem = b.client_ca.issue_pem(d.id, client=True, days=825)
            tls = TlsSection(ca_pem=b.ca_pem, cert_pem=cert_pem, key_pem=key_pem)
        unit_id = 1 if builtin(d.profile).protocol == "modbus" else None
        return Bundle(
            device_id=d.id,
            key_hex=key.hex(),
            broker=BrokerSection(host=b.broker_host, port=b.broker_port, username=d.id, password=password, tls=tls),
            state_dir=Path(b.state_dir.format(device=d.id)),
            sources=[SourceSection(profile=d.profile, port=data.port or "/dev/ttyUSB0", unit_id=unit_id)],
        )

    def revoke(self, device_id: str, data: RevokeIn) -> RevocationOut:
        """Revoke a device: its credentials are retired (the broker refuses it and ends its session once the
        files are applied) and the ingest rejects its records from then on."""
        self.who.require("revoke")
        d = self._device(device_id)
        if d.revoked_at is not None:
            raise Conflict(f"device {device_id!r} was revoked already, at {d.revoked_at.isoformat()}")
        now = m.utcnow()
        d.revoked_at = now
        for c in self.db.scalars(select(m.Credential).where(m.Credential.device_id == d.id)):
            c.retired_at = c.retired_at or now
        rev = m.Revocation(device_id=d.id, reason=data.reason, revoked_by=self.who.name, revoked_at=now)
        self.db.add(rev)
        self._audit("revoke", "device", d.id, reason=data.reason)
        self._commit()
        return RevocationOut.model_validate(rev)

    def audit(
        self,
        *,
        entity_id: str | None = None,
        actor: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[AuditOut]:
        """The audit log, newest first; ``since`` inclusive, ``until`` exclusive."""
        self.who.require("read_audit")
        q = select(m.AuditEntry).order_by(m.AuditEntry.id.desc())
        if entity_id:
            q = q.where(m.AuditEntry.entity_id == entity_id)
        if actor:
            q = q.where(m.AuditEntry.actor == actor)
        if since is not None:
            q = q.where(m.AuditEntry.at >= as_utc(since))
        if until is not None:
            q = q.where(m.AuditEntry.at < as_utc(until))
        if self.who.scoped:  # a supervisor sees the history of the devices and cases they can see
            visible, _ = self._devices_where(select(m.Device.id))
            cases = select(cast(Case.id, String)).where(self._scope_filter(Case.district_id, Case.market_id))
            q = q.where(
                or_(
                    and_(m.AuditEntry.entity == "device", m.AuditEntry.entity_id.in_(visible)),
                    and_(m.AuditEntry.entity == "case", m.AuditEntry.entity_id.in_(cases)),
                )
            )
        return self._page(q, limit, offset, AuditOut)

    def create_token(self, data: TokenIn, *, never_expires: bool = False) -> TokenCreated:
        """A new API token, expiring after ``data.expires_days``. ``never_expires`` is for the bootstrap
        admin token of ``zhijian registry init --no-expiry`` only (not reachable over the API); the audit
        entry says so."""
        self.who.require("manage_tokens")
        token_id, secret_hash, text = new_api_token()
        expires = None if never_expires else m.utcnow() + dt.timedelta(days=data.expires_days)
        row = m.ApiToken(
            id=token_id,
            name=data.name,
            role=data.role.value,
            secret_hash=secret_hash,
            districts=data.districts,
            markets=data.markets,
            expires_at=expires,
        )
        self.db.add(row)
        when = {"never_expires": True} if expires is None else {"expires_at": expires.isoformat()}
        self._audit("create", "token", token_id, name=data.name, role=data.role.value, **when)
        self._commit()
        return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=text)

    def tokens(self, *, limit: int = 50, offset: int = 0) -> Page[TokenOut]:
        self.who.require("manage_tokens")
        return self._page(select(m.ApiToken).order_by(m.ApiToken.created_at), limit, offset, TokenOut)

    def revoke_token(self, token_id: str) -> TokenOut:
        self.who.require("manage_tokens")
        row = self.db.get(m.ApiToken, token_id)
        if row is None:
            raise NotFound(NOT_FOUND.format(what="token", key=token_id))
        if row.revoked_at is None:
            row.revoked_at = m.utcnow()
            self._audit("revoke", "token", token_id)
            self._commit()
        return TokenOut.model_validate(row)
