"""Fixtures shared by the integration tests: a registry with provisioned scales and service accounts, and a
Mosquitto enforcing its password file and ACL (tests/support/fleet.py)."""

from tests.support.fleet import broker, fleet

__all__ = ["broker", "fleet"]
