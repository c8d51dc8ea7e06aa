"""The registry's error tree; the API maps each kind to one HTTP status."""

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


class Unauthenticated(RegistryError):
    """No token, or one that is unknown, expired or revoked."""

    status = 401


class Forbidden(RegistryError):
    """The caller's role may not do this."""

    status = 403


class BrokerFilesStale(RegistryError):
    """The change is recorded, but the broker's password file or ACL could not be rewritten."""

    status = 502
