"""Errors of the device registry; the API answers each with its HTTP status::

RegistryError (400)          anything the registry refuses
├── InvalidInput (422)       malformed, or breaks a rule: a mistyped licence, an unknown profile  (caller wrong)
├── NotFound (404)           absent, or outside the caller's scope: the two are not told apart    (caller wrong)
├── Conflict (409)           exists already, or its state forbids it: provisioning a revoked device
│   └── IllegalTransition    a case step its state refuses: closing an unacknowledged case      (caller wrong)
├── Unauthenticated (401)    no token, or an unknown, expired or revoked one
├── Forbidden (403)          the caller's role may not do this
├── BodyTooLarge (413)       a request body over the API's bound (ZHIJIAN_API_MAX_BODY_BYTES)      (caller wrong)
└── BrokerFilesStale (502)   recorded, but the broker has not applied it (files or reload failed) (we are wrong)
"""

from __future__ import annotations


class RegistryError(Exception):
    """Anything the registry refuses."""

    status = 400


class InvalidInput(RegistryError):
    """The request is malformed or breaks a rule (e.g. a mistyped licence code)."""

    status = 422


class NotFound(RegistryError):
    """No such thing, or not one the caller may see (the two are not told apart)."""

    status = 404


class Conflict(RegistryError):
    """It already exists, or its state forbids the change (e.g. provisioning a revoked device)."""

    status = 409


class IllegalTransition(Conflict):
    """A case step its state (or a rule) refuses: see :mod:`device_registry.case_states`."""


class Unauthenticated(RegistryError):
    """No token, or one that is unknown, expired or revoked."""

    status = 401


class Forbidden(RegistryError):
    """The caller's role may not do this."""

    status = 403


class BodyTooLarge(RegistryError):
    """A request body larger than the API accepts; refused before it is read (or as soon as it passes)."""

    status = 413


class BrokerFilesStale(RegistryError):
    """The change is recorded, but the broker has not applied it: its password file or ACL could not be
    rewritten, Mosquitto could not be told to re-read them, or it did not confirm it had."""

    status = 502
