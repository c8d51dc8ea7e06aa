"""Fixtures shared by the integration tests: a registry with provisioned scales and service accounts, and a
Mosquitto enforcing its password file and ACL (defined with the client-id takeover test, which made them)."""

from tests.integration.test_client_id_takeover import broker, fleet

__all__ = ["broker", "fleet"]
