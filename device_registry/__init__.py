"""The device registry: where every device is installed, its verifications (检定), credentials,
revocations and an audit log; the HTTP API and the broker files derived from it."""

from .auth import Principal, Role
from .errors import Conflict, Forbidden, InvalidInput, NotFound, RegistryError, Unauthenticated
from .service import BundleDefaults, Registry

__all__ = [
    "BundleDefaults",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Principal",
    "Registry",
    "RegistryError",
    "Role",
    "Unauthenticated",
]
